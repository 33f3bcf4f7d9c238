package events

import (
	"errors"
	"fmt"
)

// ErrBadCursor means a cursor or Last-Event-ID is not one this package made.
var ErrBadCursor = errors.New("malformed cursor")

// errForeignCursor is the ErrBadCursor every cursor reader returns.
var errForeignCursor = fmt.Errorf("%w: not a cursor of this server; start again without it", ErrBadCursor)
