package invalid

import "strings"

// Field is one problem with one field of a request.
type Field struct {
	// Field is the field's path, such as "platforms[1]" or "channels[2].from".
	Field  string
	Detail string
}

// Error lists every problem found in a request; nothing was written.
type Error struct {
	Fields []Field
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Add records a problem with field.
func (e *Error) Add(field, detail string) {
	e.Fields = append(e.Fields, Field{Field: field, Detail: detail})
}

// Err returns e, or nil when it holds no problems.
func (e *Error) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}
