package policy

import (
	"fmt"
	"strings"
	"time"
)

// Window is a set of weekly time ranges in a time zone, inside which
// restarts may happen: "Mon-Fri 22:00-06:00 Europe/Rome; Sat,Sun 00:00-24:00".
// A range that ends before it starts crosses midnight and belongs to the day
// it starts on.
type Window struct {
	ranges []timeRange
	spec   string
}

type timeRange struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes since midnight; end may be 1440
	loc        *time.Location
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow reads a window; "" is always open.
func ParseWindow(spec string) (*Window, error) {
	w := &Window{spec: strings.TrimSpace(spec)}
	if w.spec == "" {
		return w, nil
	}
	for _, part := range strings.Split(w.spec, ";") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			continue
		}
		r := timeRange{loc: time.UTC}
		for i := range r.days {
			r.days[i] = true
		}
		if !strings.Contains(fields[0], ":") {
			days, err := parseDays(fields[0])
			if err != nil {
				return nil, err
			}
			r.days, fields = days, fields[1:]
		}
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("window %q: want [days] HH:MM-HH:MM [time zone]", part)
		}
		from, to, ok := strings.Cut(fields[0], "-")
		var err1, err2 error
		r.start, err1 = parseClock(from)
		r.end, err2 = parseClock(to)
		if !ok || err1 != nil || err2 != nil || r.start == r.end {
			return nil, fmt.Errorf("window %q: %q is not HH:MM-HH:MM", part, fields[0])
		}
		if len(fields) == 2 {
			loc, err := time.LoadLocation(fields[1])
			if err != nil {
				return nil, fmt.Errorf("window %q: time zone: %w", part, err)
			}
			r.loc = loc
		}
		w.ranges = append(w.ranges, r)
	}
	return w, nil
}

func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	for _, item := range strings.Split(strings.ToLower(s), ",") {
		from, to, isRange := strings.Cut(item, "-")
		a, ok1 := weekdays[from]
		b, ok2 := a, ok1
		if isRange {
			b, ok2 = weekdays[to]
		}
		if !ok1 || !ok2 {
			return days, fmt.Errorf("window: %q is not a day or day range (Mon-Fri, Sat,Sun)", item)
		}
		for d := a; ; d = (d + 1) % 7 {
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return days, nil
}

func parseClock(s string) (int, error) {
	var h, m int
	if _, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || h < 0 || h > 24 || m < 0 || m > 59 || h == 24 && m != 0 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return h*60 + m, nil
}

// Open reports whether t falls inside the window.
func (w *Window) Open(t time.Time) bool {
	if w == nil || len(w.ranges) == 0 {
		return true
	}
	for _, r := range w.ranges {
		lt := t.In(r.loc)
		min := lt.Hour()*60 + lt.Minute()
		today, yesterday := lt.Weekday(), (lt.Weekday()+6)%7
		if r.start < r.end {
			if r.days[today] && min >= r.start && min < r.end {
				return true
			}
			continue
		}
		// Crosses midnight: the evening of a listed day, or the morning after.
		if r.days[today] && min >= r.start || r.days[yesterday] && min < r.end {
			return true
		}
	}
	return false
}

func (w *Window) String() string { return w.spec }

// Next returns when a window closed at t next opens: the earliest start of
// one of its ranges after t, on a day the range lists; zero for a window
// that never closes, or that does not open within a week.
func (w *Window) Next(t time.Time) time.Time {
	var next time.Time
	if w == nil {
		return next
	}
	for _, r := range w.ranges {
		lt := t.In(r.loc)
		for d := 0; d <= 7; d++ {
			day := time.Date(lt.Year(), lt.Month(), lt.Day()+d, r.start/60, r.start%60, 0, 0, r.loc)
			// A start in a daylight-saving gap moves: Open says whether it
			// is one.
			if !r.days[day.Weekday()] || !day.After(t) || !w.Open(day) {
				continue
			}
			if next.IsZero() || day.Before(next) {
				next = day
			}
			break
		}
	}
	return next
}
