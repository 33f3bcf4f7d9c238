package release

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// The kinds of windows.
const (
	WindowDeny  = "deny"
	WindowAllow = "allow"
)

// maxSoak bounds a channel's soak.
const maxSoak = 90 * 24 * time.Hour

// window is a Window made ready to evaluate: its rule as a schedule in its time zone.
type window struct {
	Window
	sched *cron.SpecSchedule
	dur   time.Duration
	loc   *time.Location
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// compileWindow checks w and returns it ready to evaluate; errors name the field at fault
// (kind, rrule, cron, duration, time_zone) before a colon.
func compileWindow(w Window) (window, []FieldError) {
	var errs []FieldError
	add := func(f, d string) { errs = append(errs, FieldError{Field: f, Detail: d}) }
	if w.Kind != WindowDeny && w.Kind != WindowAllow {
		add("kind", fmt.Sprintf("%q is not a window kind; use deny (a freeze) or allow", w.Kind))
	}
	loc := time.UTC
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil || strings.HasPrefix(w.TimeZone, "/") || strings.Contains(w.TimeZone, "..") {
			add("time_zone", fmt.Sprintf("%q is not a known IANA time zone, such as Europe/Berlin", w.TimeZone))
		} else {
			loc = l
		}
	}
	d, err := time.ParseDuration(w.Duration)
	switch {
	case w.Duration == "":
		add("duration", "a window needs a duration, such as \"60h\"")
	case err != nil:
		add("duration", fmt.Sprintf("%q is not a duration, such as \"60h\" or \"90m\"", w.Duration))
	case d <= 0:
		add("duration", "must be longer than 0")
	case d > 366*24*time.Hour:
		add("duration", "at most a year (8784h)")
	}
	var spec string
	switch {
	case (w.RRule == "") == (w.Cron == ""):
		add("rrule", "give exactly one of rrule (such as \"FREQ=WEEKLY;BYDAY=FR;BYHOUR=12\") and cron (such as \"0 12 * * 5\")")
	case w.RRule != "":
		s, err := rruleToCron(w.RRule)
		if err != nil {
			add("rrule", err.Error())
		}
		spec = s
	default:
		spec = w.Cron
		if strings.HasPrefix(spec, "@") || strings.Contains(spec, "TZ=") {
			add("cron", fmt.Sprintf("%q: give five fields (minute hour day-of-month month day-of-week) and the zone in time_zone", spec))
			spec = ""
		}
	}
	out := window{Window: w, dur: d, loc: loc}
	if spec != "" {
		s, err := cronParser.Parse(spec)
		if err != nil {
			f := "cron"
			if w.RRule != "" {
				f = "rrule"
			}
			add(f, fmt.Sprintf("%q: %v", spec, err))
		} else if ss, ok := s.(*cron.SpecSchedule); ok {
			ss.Location = loc
			out.sched = ss
		}
	}
	return out, errs
}

var rruleDays = map[string]string{"SU": "0", "MO": "1", "TU": "2", "WE": "3", "TH": "4", "FR": "5", "SA": "6"}

// rruleToCron turns the part of RFC 5545 recurrence rules that a window needs into a cron
// expression: FREQ (MINUTELY to YEARLY) with BYMINUTE, BYHOUR, BYDAY (weekdays without an
// ordinal), BYMONTHDAY and BYMONTH, INTERVAL 1 and WKST. A window has no DTSTART, so an
// unnamed minute or hour is 0 (a daily rule starts at midnight).
func rruleToCron(rule string) (string, error) {
	rule = strings.TrimPrefix(strings.TrimSpace(rule), "RRULE:")
	parts := map[string]string{}
	for p := range strings.SplitSeq(rule, ";") {
		k, v, ok := strings.Cut(p, "=")
		k = strings.ToUpper(strings.TrimSpace(k))
		if !ok || v == "" {
			return "", fmt.Errorf("%q: %q is not NAME=VALUE", rule, p)
		}
		if _, dup := parts[k]; dup {
			return "", fmt.Errorf("%q: %s is given twice", rule, k)
		}
		parts[k] = strings.ToUpper(strings.TrimSpace(v))
	}
	freq := parts["FREQ"]
	if freq == "" {
		return "", fmt.Errorf("%q has no FREQ; start with FREQ=WEEKLY (or DAILY, MONTHLY, ...)", rule)
	}
	list := func(k string, lo, hi int) (string, error) {
		v, ok := parts[k]
		if !ok {
			return "", nil
		}
		for n := range strings.SplitSeq(v, ",") {
			i, err := strconv.Atoi(n)
			if err != nil || i < lo || i > hi {
				return "", fmt.Errorf("%q: %s=%s: each value must be a number from %d to %d", rule, k, v, lo, hi)
			}
		}
		return v, nil
	}
	for k := range parts {
		if !slices.Contains([]string{"FREQ", "INTERVAL", "WKST", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYMONTH"}, k) {
			return "", fmt.Errorf("%q: %s is not supported in a window; use FREQ, BYMINUTE, BYHOUR, BYDAY, BYMONTHDAY and BYMONTH (or a cron expression)", rule, k)
		}
	}
	if iv, ok := parts["INTERVAL"]; ok && iv != "1" {
		return "", fmt.Errorf("%q: only INTERVAL=1 is supported in a window", rule)
	}
	minute, err := list("BYMINUTE", 0, 59)
	if err != nil {
		return "", err
	}
	hour, err := list("BYHOUR", 0, 23)
	if err != nil {
		return "", err
	}
	dom, err := list("BYMONTHDAY", 1, 31)
	if err != nil {
		return "", err
	}
	month, err := list("BYMONTH", 1, 12)
	if err != nil {
		return "", err
	}
	var dow string
	if v, ok := parts["BYDAY"]; ok {
		var ds []string
		for d := range strings.SplitSeq(v, ",") {
			n, ok := rruleDays[d]
			if !ok {
				return "", fmt.Errorf("%q: BYDAY=%s: each day must be one of MO, TU, WE, TH, FR, SA, SU (without an ordinal)", rule, v)
			}
			ds = append(ds, n)
		}
		dow = strings.Join(ds, ",")
	}
	if dom != "" && dow != "" {
		return "", fmt.Errorf("%q: give BYMONTHDAY or BYDAY, not both", rule)
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	switch freq {
	case "MINUTELY":
		minute = or(minute, "*")
		hour = or(hour, "*")
	case "HOURLY":
		hour = or(hour, "*")
	case "DAILY":
	case "WEEKLY":
		if dow == "" {
			return "", fmt.Errorf("%q: a weekly window needs BYDAY, such as BYDAY=FR", rule)
		}
	case "MONTHLY":
		if dom == "" && dow == "" {
			return "", fmt.Errorf("%q: a monthly window needs BYMONTHDAY, such as BYMONTHDAY=1", rule)
		}
	case "YEARLY":
		if month == "" || dom == "" {
			return "", fmt.Errorf("%q: a yearly window needs BYMONTH and BYMONTHDAY, such as BYMONTH=12;BYMONTHDAY=24", rule)
		}
	default:
		return "", fmt.Errorf("%q: FREQ=%s is not one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY", rule, freq)
	}
	return strings.Join([]string{or(minute, "0"), or(hour, "0"), or(dom, "*"), or(month, "*"), or(dow, "*")}, " "), nil
}

// maxWindowSteps bounds the walks through occurrences, for rules whose windows overlap.
const maxWindowSteps = 1000

// covering returns, when t is inside an occurrence of w, when the span of w's
// occurrences around t ends (overlapping occurrences joined).
func (w window) covering(t time.Time) (time.Time, bool) {
	s := w.sched.Next(t.Add(-w.dur))
	if s.IsZero() || s.After(t) {
		return time.Time{}, false
	}
	end := s.Add(w.dur)
	for range maxWindowSteps {
		n := w.sched.Next(s)
		if n.IsZero() || n.After(end) {
			break
		}
		s, end = n, n.Add(w.dur)
	}
	return end, true
}

// windowsAt evaluates ws at t: whether a move is allowed now, and if it is, until when
// (zero for ever); if it is not, from when (zero for never) and the window that refuses.
func windowsAt(ws []window, t time.Time) (open bool, until, opens time.Time, by *window) {
	check := func(t time.Time) (bool, time.Time, *window) {
		var hasAllow, inAllow bool
		var nextAllow time.Time
		for i := range ws {
			w := &ws[i]
			if w.sched == nil {
				continue
			}
			end, in := w.covering(t)
			if w.Kind == WindowDeny && in {
				return false, end, w
			}
			if w.Kind == WindowAllow {
				hasAllow = true
				if in {
					inAllow = true
				} else if n := w.sched.Next(t); !n.IsZero() && (nextAllow.IsZero() || n.Before(nextAllow)) {
					nextAllow = n
				}
			}
		}
		if hasAllow && !inAllow {
			var first *window
			for i := range ws {
				if ws[i].Kind == WindowAllow {
					first = &ws[i]
					break
				}
			}
			return false, nextAllow, first
		}
		return true, time.Time{}, nil
	}
	ok, next, w := check(t)
	if ok {
		return true, windowsUntil(ws, t), time.Time{}, nil
	}
	by = w
	for range 100 {
		if next.IsZero() {
			return false, time.Time{}, time.Time{}, by
		}
		t = next
		if ok, next, _ = check(t); ok {
			return false, time.Time{}, t, by
		}
	}
	return false, time.Time{}, time.Time{}, by
}

// windowsUntil is when moves stop being allowed after t, a time they are allowed: the
// next deny window's start, or the end of the allow windows t is in; zero for never.
func windowsUntil(ws []window, t time.Time) time.Time {
	var until, allowEnd time.Time
	earlier := func(a, b time.Time) time.Time {
		if a.IsZero() || (!b.IsZero() && b.Before(a)) {
			return b
		}
		return a
	}
	for _, w := range ws {
		if w.sched == nil {
			continue
		}
		switch w.Kind {
		case WindowDeny:
			until = earlier(until, w.sched.Next(t))
		case WindowAllow:
			if end, in := w.covering(t); in && end.After(allowEnd) {
				allowEnd = end
			}
		}
	}
	if !allowEnd.IsZero() {
		until = earlier(until, allowEnd)
	}
	return until
}

// describeTime says t in loc in words, with the zone's name.
func describeTime(t time.Time, loc *time.Location) string {
	s := t.In(loc).Format("Mon 2 Jan 2006 15:04 MST")
	if loc != time.UTC {
		s += " (" + loc.String() + ")"
	}
	return s
}
