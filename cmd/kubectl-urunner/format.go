package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// short is a digest as urunner's plan table shows it: 12 hex characters.
func short(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) >= 12 {
		return h[:12]
	}
	return d
}

// count is "1 image", "2 images".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// orDash shows an empty value as "-", as kubectl's tables do.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// at shows a time in UTC with its age: "2025-11-29 05:00:03 UTC (3m ago)".
func (c *cli) at(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + c.ago(t) + ")"
}

// ago is a time's age in kubectl's AGE format.
func (c *cli) ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := c.now().Sub(t)
	if d < 0 {
		return "in " + duration.HumanDuration(-d)
	}
	return duration.HumanDuration(d) + " ago"
}

// table writes aligned columns, kubectl's way: two spaces between them.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 1, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		// A tab or newline in a value (an error from a registry) would
		// break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

// field writes one "label  value" line of a command's header block.
func field(w io.Writer, label, value string) {
	fmt.Fprintf(w, "%-14s%s\n", label, value)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// timePtr is nil for a zero time, so that JSON leaves it out.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
