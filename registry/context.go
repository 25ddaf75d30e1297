package registry

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/regclient/regclient/types/manifest"
)

// Labels an image names its source with (OCI image-spec annotations;
// builders set them as manifest annotations, config labels, or both).
const (
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelVersion  = "org.opencontainers.image.version"
	LabelCreated  = "org.opencontainers.image.created"
)

// Provenance is what an image says of where it comes from.
type Provenance struct {
	Revision, Source, Version, Created string
}

func (p Provenance) empty() bool { return p == Provenance{} }

// Provenance reads what the image at digest says of its source: its
// manifest's annotations (one GET of the manifest), and, for an image
// manifest that does not name its revision there, its config's labels
// (one GET of the config). A multi-platform index says only what its own
// annotations say.
func (res *Resolver) Provenance(ctx context.Context, l Lookup, digest string) (Provenance, error) {
	rc, err := res.clientFor(ctx, l)
	if err != nil {
		return Provenance{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
	defer cancel()
	r := l.Ref.SetDigest(digest)
	m, err := rc.ManifestGet(ctx, r)
	if err != nil {
		return Provenance{}, fmt.Errorf("get manifest %s@%s: %w", Key(l.Ref), digest, err)
	}
	var p Provenance
	if a, ok := m.(manifest.Annotator); ok {
		if anns, err := a.GetAnnotations(); err == nil {
			p = provenance(anns)
		}
	}
	img, ok := m.(manifest.Imager)
	if !ok || p.Revision != "" {
		return p, nil
	}
	desc, err := img.GetConfig()
	if err != nil {
		return p, nil
	}
	cfg, err := rc.BlobGetOCIConfig(ctx, r, desc)
	if err != nil {
		return p, fmt.Errorf("get config of %s@%s: %w", Key(l.Ref), digest, err)
	}
	labels := provenance(cfg.GetConfig().Config.Labels)
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&p.Revision, labels.Revision}, {&p.Source, labels.Source}, {&p.Version, labels.Version}, {&p.Created, labels.Created},
	} {
		if *f.dst == "" {
			*f.dst = f.v
		}
	}
	return p, nil
}

// Bounds on what an image says, which anyone who can push writes and
// which goes into Events, log lines, notifications and the run report:
// each label's value, and the whole change line.
const (
	MaxLabel  = 256
	MaxChange = 1024
)

func provenance(m map[string]string) Provenance {
	return Provenance{Revision: bound(m[LabelRevision], MaxLabel), Source: bound(m[LabelSource], MaxLabel),
		Version: bound(m[LabelVersion], MaxLabel), Created: bound(m[LabelCreated], MaxLabel)}
}

// bound returns s cut to at most n bytes on a rune boundary, ending in
// "…" when cut; invalid UTF-8 is dropped.
func bound(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Change says, for people, what a move changed: "revision 3f2a1c4 → 9b7e02d
// (https://github.com/org/app/compare/3f2a1c4...9b7e02d), version 1.2 → 1.3";
// "" when the images say nothing. It is at most MaxChange bytes.
func Change(from, to Provenance) string {
	if from.empty() && to.empty() {
		return ""
	}
	var parts []string
	if from.Revision != "" || to.Revision != "" {
		s := fmt.Sprintf("revision %s → %s", shortRev(from.Revision), shortRev(to.Revision))
		if u := compareURL(to.Source, from.Revision, to.Revision); u != "" {
			s += " (" + u + ")"
		}
		parts = append(parts, s)
	}
	if from.Version != to.Version {
		parts = append(parts, fmt.Sprintf("version %s → %s", orUnknown(from.Version), orUnknown(to.Version)))
	}
	if to.Source != "" && compareURL(to.Source, from.Revision, to.Revision) == "" {
		parts = append(parts, "source "+to.Source)
	}
	return bound(strings.Join(parts, ", "), MaxChange)
}

func shortRev(r string) string {
	if r == "" {
		return "?"
	}
	return r[:min(len(r), 12)]
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// compareURL links two revisions on a known forge, "" otherwise.
func compareURL(source, from, to string) string {
	if from == "" || to == "" || from == to {
		return ""
	}
	src := strings.TrimSuffix(strings.TrimSuffix(source, "/"), ".git")
	switch {
	case strings.HasPrefix(src, "https://github.com/"), strings.HasPrefix(src, "https://codeberg.org/"), strings.HasPrefix(src, "https://gitea.com/"):
		return src + "/compare/" + from + "..." + to
	case strings.HasPrefix(src, "https://gitlab.com/"):
		return src + "/-/compare/" + from + "..." + to
	case strings.HasPrefix(src, "https://bitbucket.org/"):
		return src + "/branches/compare/" + to + "%0D" + from
	}
	return ""
}
