package source

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

const notTarGz = "not a gzip-compressed tar archive"

// tarGz walks a gzip-compressed tar archive. It reads the gzip stream to its end, so the
// checksum in its trailer is verified and a truncated file is noticed.
func (w *walker) tarGz(ctx context.Context, file io.Reader) error {
	zr, err := gzip.NewReader(bufio.NewReaderSize(&countReader{w: w, r: file}, 32<<10))
	if err != nil {
		if w.stop != nil {
			return w.stop
		}
		return &Error{Reason: notTarGz}
	}
	stream := &inflateReader{ctx: ctx, w: w, r: zr}
	tr := tar.NewReader(stream)
	for first := true; ; first = false {
		w.cur = ""
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil // GODEBUG=tarinsecurepath=0; cleanName judges names
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if first && errors.Is(err, tar.ErrHeader) && w.stop == nil {
				return &Error{Reason: notTarGz}
			}
			return w.readError(err, "a tar header is corrupt")
		}
		if err := w.begin(ctx, hdr.Name); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, '\x00':
			if sparse(hdr) {
				return invalid(hdr.Name, "sparse files are not allowed")
			}
			if err := w.add(ctx, hdr.Name, false, hdr.Mode&0o111 != 0, tr); err != nil {
				return err
			}
		case tar.TypeDir:
			if err := w.add(ctx, hdr.Name, true, false, nil); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
			// Metadata for the whole archive (git archive records the commit in one);
			// it describes no file and is ignored.
		default:
			return invalid(hdr.Name, "%s", typeReason(hdr.Typeflag))
		}
	}
	// The end of the tar archive need not be the end of the gzip stream. Read the rest so
	// that gzip verifies its checksum, but no more than tar's padding would explain.
	w.cur = ""
	n, err := io.Copy(io.Discard, io.LimitReader(stream, maxTrailing+1))
	if err != nil {
		return w.readError(err, "the gzip stream is corrupt")
	}
	if n > maxTrailing {
		return &Error{Reason: fmt.Sprintf("more than %s of data follow the end of the tar archive", sizeString(maxTrailing))}
	}
	return nil
}

func typeReason(flag byte) string {
	switch flag {
	case tar.TypeSymlink:
		return "symbolic links are not allowed"
	case tar.TypeLink:
		return "hard links are not allowed"
	case tar.TypeChar, tar.TypeBlock:
		return "device files are not allowed"
	case tar.TypeFifo:
		return "named pipes are not allowed"
	case tar.TypeGNUSparse:
		return "sparse files are not allowed"
	}
	return fmt.Sprintf("entries of tar type %q are not allowed, only regular files and directories", flag)
}

// sparse reports a file in one of the PAX sparse formats, which archive/tar expands
// itself and reports as a regular file.
func sparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
