package invalid

import "testing"

func TestError(t *testing.T) {
	var e Error
	if err := e.Err(); err != nil {
		t.Errorf("Err() of no problems = %v, want nil", err)
	}
	e.Add("url", "is required")
	e.Add("events[1]", "is not an event type")
	if err := e.Err(); err != &e {
		t.Errorf("Err() = %v, want the error itself", err)
	}
	if got, want := e.Error(), "invalid request: url: is required; events[1]: is not an event type"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
