package image

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/slipway/slipway/store"
)

// SBOMMediaType is the media type of the SPDX SBOM blob and the artifactType of its
// referrer manifest.
const SBOMMediaType = "application/spdx+json"

// The SPDX 2.3 JSON document, the fields slipway fills in, in the order they are written.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	DocumentDescribes []string           `json:"documentDescribes"`
	Packages          []spdxPackage      `json:"packages"`
	Files             []spdxFile         `json:"files"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
	Comment  string   `json:"comment,omitempty"`
}

type spdxPackage struct {
	Name                  string            `json:"name"`
	SPDXID                string            `json:"SPDXID"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	Checksums             []spdxChecksum    `json:"checksums,omitempty"`
	LicenseConcluded      string            `json:"licenseConcluded"`
	LicenseDeclared       string            `json:"licenseDeclared"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	Comment               string            `json:"comment,omitempty"`
}

type spdxFile struct {
	FileName  string         `json:"fileName"`
	SPDXID    string         `json:"SPDXID"`
	Checksums []spdxChecksum `json:"checksums"`
	Comment   string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// sbomInput is what an SBOM is made of besides the binary's build info.
type sbomInput struct {
	app, version string
	platform     Platform
	binaryPath   string // where the binary is in the image, "/app/<app>"
	sha256, sha1 []byte // of the binary
	created      time.Time
	licenses     Licenses // nil: none known
}

// Licenses tells the license of a module a binary was built with.
type Licenses interface {
	// License is the SPDX license expression the license files of m's source declare (m
	// is the binary's main module when main is true), or "" when it cannot tell.
	License(m *debug.Module, main bool) string
}

// noAssertion is the SPDX value of a license not known.
const noAssertion = "NOASSERTION"

// goLicense is the license of the Go distribution, the standard library's.
const goLicense = "BSD-3-Clause"

// declared is the licenseDeclared of module m: what l tells, else NOASSERTION.
func declared(l Licenses, m *debug.Module, main bool) string {
	if l == nil {
		return noAssertion
	}
	if s := l.License(m, main); s != "" {
		return s
	}
	return noAssertion
}

// makeSBOM returns the SPDX 2.3 JSON SBOM of a Go binary from its build info: the main
// module, every dependency with its version and go.sum checksum, the Go standard library
// at the binary's Go version, and the binary file. Each module's licenseDeclared is what
// in.licenses tells (NOASSERTION when it cannot), the standard library's BSD-3-Clause;
// every licenseConcluded is NOASSERTION. The document is a function of its inputs: its
// namespace comes from the binary's digest and its creation time is in.created.
func makeSBOM(bi *debug.BuildInfo, in sbomInput) ([]byte, error) {
	binHex := hex.EncodeToString(in.sha256)
	doc := newSPDX(bi, in, fmt.Sprintf("%s %s %s", in.app, in.version, in.platform), "sha256-"+binHex,
		fmt.Sprintf("from the build info of %s (%s, %s)", in.binaryPath, in.platform, bi.GoVersion))
	doc.Files = []spdxFile{binaryFile(in, sbomFileID)}
	doc.Relationships = append(doc.Relationships,
		spdxRelationship{sbomMainID, "GENERATES", sbomFileID},
		spdxRelationship{sbomMainID, "DEPENDS_ON", sbomGoID})
	for i, dep := range bi.Deps {
		p := depPackage(dep, fmt.Sprintf("SPDXRef-Package-dep-%d", i+1), in.licenses)
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{sbomMainID, "DEPENDS_ON", p.SPDXID})
	}
	return encodeSPDX(doc)
}

// platformSBOM is what one platform's SBOM is made of, kept for the index's.
type platformSBOM struct {
	bi *debug.BuildInfo
	in sbomInput
}

// makeIndexSBOM returns one SPDX 2.3 JSON SBOM covering every platform of an image index,
// parts in platform order. The main module and the Go standard library are those of the
// first part (one source and one toolchain make every binary of a build); the
// dependencies are the union of the parts', in path order, which the main module
// DEPENDS_ON; each binary is a file of its own (SPDXRef-File-binary-<os>-<arch>[-<variant>],
// its comment naming its platform) that the main module GENERATES and that CONTAINS the
// dependencies linked into it. Like makeSBOM it is a function of its inputs: its
// namespace comes from the index's digest.
func makeIndexSBOM(parts []platformSBOM, index store.Digest) ([]byte, error) {
	first := parts[0]
	platforms := make([]string, len(parts))
	for i, p := range parts {
		platforms[i] = p.in.platform.String()
	}
	doc := newSPDX(first.bi, first.in, first.in.app+" "+first.in.version, "index-sha256-"+index.Hex(),
		fmt.Sprintf("from the build info of %s in the images for %s (%s)", first.in.binaryPath, strings.Join(platforms, ", "), first.bi.GoVersion))
	doc.Relationships = append(doc.Relationships, spdxRelationship{sbomMainID, "DEPENDS_ON", sbomGoID})
	deps := map[string]string{} // module path → SPDX id
	for _, dep := range unionDeps(parts) {
		p := depPackage(dep, fmt.Sprintf("SPDXRef-Package-dep-%d", len(deps)+1), first.in.licenses)
		deps[dep.Path] = p.SPDXID
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{sbomMainID, "DEPENDS_ON", p.SPDXID})
	}
	for _, p := range parts {
		f := binaryFile(p.in, sbomFileID+"-"+strings.ReplaceAll(p.in.platform.String(), "/", "-"))
		f.Comment = "the binary of the " + p.in.platform.String() + " image"
		doc.Files = append(doc.Files, f)
		doc.Relationships = append(doc.Relationships, spdxRelationship{sbomMainID, "GENERATES", f.SPDXID})
		for _, dep := range p.bi.Deps {
			doc.Relationships = append(doc.Relationships, spdxRelationship{f.SPDXID, "CONTAINS", deps[dep.Path]})
		}
	}
	return encodeSPDX(doc)
}

// unionDeps returns the dependencies of every part, each module once, in path order.
func unionDeps(parts []platformSBOM) []*debug.Module {
	seen := map[string]bool{}
	var out []*debug.Module
	for _, p := range parts {
		for _, dep := range p.bi.Deps {
			if !seen[dep.Path] {
				seen[dep.Path] = true
				out = append(out, dep)
			}
		}
	}
	slices.SortFunc(out, func(a, b *debug.Module) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// newSPDX is an SBOM document of the main module in bi and the Go standard library,
// describing the main module; name is its name, id ends its namespace, comment is its
// creation comment.
func newSPDX(bi *debug.BuildInfo, in sbomInput, name, id, comment string) spdxDocument {
	return spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://slipway.dev/spdx/" + in.app + "/" + id,
		CreationInfo: spdxCreationInfo{
			Created:  in.created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: slipway"},
			Comment:  comment,
		},
		DocumentDescribes: []string{sbomMainID},
		Packages:          []spdxPackage{mainPackage(bi, in.version, in.licenses), goPackage(bi)},
		Relationships:     []spdxRelationship{{"SPDXRef-DOCUMENT", "DESCRIBES", sbomMainID}},
	}
}

// binaryFile is the SPDX file of the binary in.
func binaryFile(in sbomInput, id string) spdxFile {
	return spdxFile{
		FileName: "." + in.binaryPath,
		SPDXID:   id,
		Checksums: []spdxChecksum{
			{Algorithm: "SHA1", ChecksumValue: hex.EncodeToString(in.sha1)},
			{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(in.sha256)},
		},
	}
}

// encodeSPDX is the JSON of doc, indented, with a final newline.
func encodeSPDX(doc spdxDocument) ([]byte, error) {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding SBOM: %w", err)
	}
	return append(b, '\n'), nil
}

// The SPDX ids of the main module, the Go standard library and the binary.
const sbomMainID, sbomGoID, sbomFileID = "SPDXRef-Package-main", "SPDXRef-Package-go", "SPDXRef-File-binary"

// mainPackage describes the binary's main module; a module without a version (built
// from a directory) gets version, the one slipway built. l tells its license.
func mainPackage(bi *debug.BuildInfo, version string, l Licenses) spdxPackage {
	mainVersion := bi.Main.Version
	mainComment := "main package " + bi.Path
	if mainVersion == "" || mainVersion == "(devel)" {
		mainVersion = version
		mainComment += "; the build info has no module version, this is the version slipway built"
	}
	p := module(bi.Main.Path, mainVersion, bi.Main.Sum, sbomMainID, "APPLICATION")
	p.LicenseDeclared = declared(l, &bi.Main, true)
	p.Comment = joinComments(mainComment, p.Comment)
	return p
}

// goPackage describes the Go toolchain and standard library the binary was built with.
func goPackage(bi *debug.BuildInfo) spdxPackage {
	return spdxPackage{
		Name:                  "go",
		SPDXID:                sbomGoID,
		VersionInfo:           bi.GoVersion,
		DownloadLocation:      "NOASSERTION",
		LicenseConcluded:      noAssertion,
		LicenseDeclared:       goLicense,
		ExternalRefs:          []spdxExternalRef{purl("stdlib", strings.TrimPrefix(bi.GoVersion, "go"))},
		PrimaryPackagePurpose: "LIBRARY",
		Comment:               "the Go toolchain and standard library the binary was built with",
	}
}

// depPackage describes a dependency, as replaced if it was; l tells its license.
func depPackage(dep *debug.Module, id string, l Licenses) spdxPackage {
	r := dep.Replace
	if r == nil {
		p := module(dep.Path, dep.Version, dep.Sum, id, "LIBRARY")
		p.LicenseDeclared = declared(l, dep, false)
		return p
	}
	p := module(dep.Path, r.Version, r.Sum, id, "LIBRARY")
	p.LicenseDeclared = declared(l, dep, false)
	p.Comment = joinComments("replaced by "+strings.TrimSpace(r.Path+" "+r.Version), p.Comment)
	if r.Version == "" {
		p.VersionInfo = dep.Version
	}
	return p
}

// module describes a Go module; sum is its go.sum hash ("h1:" and a base64 SHA-256),
// written as a SHA256 checksum and, verbatim, in the comment. Its licenses are not
// asserted: the caller sets the declared one it knows. The concluded one stays
// NOASSERTION: slipway reads the license files a module declares its license in, it
// does not review the module's source to conclude one.
func module(path, version, sum, id, purpose string) spdxPackage {
	p := spdxPackage{
		Name:                  path,
		SPDXID:                id,
		VersionInfo:           version,
		DownloadLocation:      "NOASSERTION",
		LicenseConcluded:      noAssertion,
		LicenseDeclared:       noAssertion,
		PrimaryPackagePurpose: purpose,
	}
	if version != "" {
		p.ExternalRefs = []spdxExternalRef{purl(path, version)}
	}
	if h, ok := strings.CutPrefix(sum, "h1:"); ok {
		if raw, err := base64.StdEncoding.DecodeString(h); err == nil && len(raw) == 32 {
			p.Checksums = []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(raw)}}
			p.Comment = "go.sum " + sum
		}
	}
	return p
}

// purl is the package URL of a Go module.
func purl(path, version string) spdxExternalRef {
	return spdxExternalRef{
		ReferenceCategory: "PACKAGE-MANAGER",
		ReferenceType:     "purl",
		ReferenceLocator:  "pkg:golang/" + path + "@" + strings.ReplaceAll(version, "+", "%2B"),
	}
}

func joinComments(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}
