package webhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every parser takes any body without panicking, and every reference it
// accepts is canonical: parsing it again gives it back.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"events":[{"action":"push","target":{"tag":"a","repository":"b"},"request":{"host":"c:1"}}]}`))
	hosts, _ := parseHostRewrite("a:1=b.example.com")
	parsers := []func([]byte) (notice, error){
		func(b []byte) (notice, error) { return parseDistribution(b, hosts) },
		func(b []byte) (notice, error) { return parseHarbor(b, hosts) },
		parseDockerHub,
		func(b []byte) (notice, error) { return parseGeneric(b, hosts) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range parsers {
			n, err := parse(body)
			if err != nil {
				continue
			}
			for _, r := range n.refs {
				if isSubject(r) {
					repo, digest, _ := strings.Cut(r, "@")
					if again, err := canonical(repo + ":x"); err != nil || again != repo+":x" || !signatureTag.MatchString(strings.Replace(digest, ":", "-", 1)) {
						t.Errorf("subject %q is not canonical: %v", r, err)
					}
					continue
				}
				again, err := canonical(r)
				if err != nil || again != r {
					t.Errorf("reference %q is not canonical: %q, %v", r, again, err)
				}
			}
		}
	})
}
