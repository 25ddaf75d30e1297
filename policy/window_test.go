package policy

import (
	"testing"
	"time"
)

func TestWindowOpen(t *testing.T) {
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, hhmm string) time.Time {
		// 2026-11-23 is a Monday.
		d := map[string]int{"Mon": 23, "Tue": 24, "Wed": 25, "Thu": 26, "Fri": 27, "Sat": 28, "Sun": 29}[day]
		tm, _ := time.ParseInLocation("2006-01-02 15:04", "2026-11-"+itoa(d)+" "+hhmm, rome)
		return tm
	}
	for _, tc := range []struct {
		spec string
		at   time.Time
		want bool
	}{
		{"", at("Mon", "12:00"), true},
		{"Mon-Fri 22:00-06:00 Europe/Rome", at("Mon", "23:00"), true},
		{"Mon-Fri 22:00-06:00 Europe/Rome", at("Tue", "05:59"), true},
		{"Mon-Fri 22:00-06:00 Europe/Rome", at("Tue", "06:00"), false},
		{"Mon-Fri 22:00-06:00 Europe/Rome", at("Sat", "03:00"), true}, // Friday night
		{"Mon-Fri 22:00-06:00 Europe/Rome", at("Sat", "23:00"), false},
		{"Mon-Fri 22:00-06:00 Europe/Rome", at("Mon", "03:00"), false}, // Sunday night
		{"Sat,Sun 00:00-24:00 Europe/Rome", at("Sun", "12:00"), true},
		{"Sat,Sun 00:00-24:00 Europe/Rome", at("Fri", "12:00"), false},
		{"09:00-17:00 Europe/Rome", at("Wed", "09:00"), true},
		{"09:00-17:00", at("Wed", "09:30"), false}, // no zone is UTC: 08:30 there
		{"09:00-17:00 Europe/Rome; Sat 10:00-11:00 Europe/Rome", at("Sat", "10:30"), true},
		{"Fri-Mon 20:00-21:00 Europe/Rome", at("Sun", "20:30"), true},
		{"Fri-Mon 20:00-21:00 Europe/Rome", at("Wed", "20:30"), false},
	} {
		w, err := ParseWindow(tc.spec)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tc.spec, err)
		}
		if got := w.Open(tc.at); got != tc.want {
			t.Errorf("%q open at %s = %v, want %v", tc.spec, tc.at.Format("Mon 15:04 MST"), got, tc.want)
		}
	}
}

func TestWindowRejects(t *testing.T) {
	for _, spec := range []string{"Mon-Fri", "Funday 10:00-11:00", "10:00-10:00", "25:00-26:00", "10:00-11:00 Mars/Olympus", "10-11", "Mon 10:00-11:00 UTC extra"} {
		if _, err := ParseWindow(spec); err == nil {
			t.Errorf("ParseWindow(%q) accepted", spec)
		}
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
