package cacheprog

import (
	"encoding/hex"
	"time"
)

// Hello is the first line a cache program sends on its connection.
type Hello struct {
	Namespace string `json:"namespace"`
	// Session names the compile the program serves (gocache.Server.Compile), when the
	// server asked for one: the program then reports the actions it answered itself.
	Session string `json:"session,omitempty"`
}

// Request and Response are the go command's cache protocol (cmd/go/internal/cacheprog),
// which the cache program relays as it is, and the program's own messages to the server.
type Request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
	Hits     int64  `json:",omitempty"` // of CmdHits
	// Actions are the hex action IDs of the gets the program answered (CmdHits, in a
	// session only).
	Actions []string `json:",omitempty"`
}

type Response struct {
	ID            int64      `json:"ID"`
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

// Hit is the answer to a get that found e, its output at path.
func Hit(e Entry, path string) Response {
	out, _ := hex.DecodeString(e.Output)
	t := e.Time
	return Response{OutputID: out, Size: e.Size, Time: &t, DiskPath: path}
}

// The program's own messages to the server, which the server never answers.
const (
	CmdUsed = "slipway-used" // ActionID: an entry the program answered a get with
	CmdHits = "slipway-hits" // Hits: how many gets the program answered; Actions: which
)
