package registry

import (
	"fmt"
	"strings"
)

// Platform is an OS, architecture and variant, as in an index's manifest
// list and a node's status.
type Platform struct {
	OS, Architecture, Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads "os/arch[/variant]", normalised.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || len(parts) == 3 && parts[2] == "" {
		return Platform{}, fmt.Errorf("%q is not os/arch[/variant]", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p.normalize(), nil
}

// normalize spells a platform as containerd does: arm64/v8 is arm64, arm
// is arm/v7, aarch64 is arm64, x86_64 is amd64 (whose v1 is no variant).
func (p Platform) normalize() Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture, p.Variant = strings.ToLower(p.Architecture), strings.ToLower(p.Variant)
	switch p.Architecture {
	case "i386":
		p.Architecture, p.Variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		switch p.Variant {
		case "8", "v8", "v8.0":
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	return p
}

// Matches reports whether have is the same platform as p, once both are
// normalised: linux/arm64/v8 matches linux/arm64, linux/arm/v7 does not
// match linux/arm/v6.
func (p Platform) Matches(have Platform) bool {
	return p.normalize() == have.normalize()
}

// runs reports whether a node of platform p runs an image of platform
// have, and how well (higher is better): itself best, then older variants
// of its architecture, newest first, as containerd picks them (an arm/v7
// node runs arm/v6 and arm/v5 images, an amd64/v3 node amd64/v2 and v1).
func (p Platform) runs(have Platform) (int, bool) {
	p, have = p.normalize(), have.normalize()
	if p == have {
		return 100, true
	}
	if p.OS != have.OS || p.Architecture != have.Architecture {
		return 0, false
	}
	order := map[string][]string{
		"arm":   {"v8", "v7", "v6", "v5"},
		"amd64": {"v4", "v3", "v2", ""},
	}[p.Architecture]
	mine := -1
	for i, v := range order {
		if v == p.Variant {
			mine = i
		}
		if mine >= 0 && i > mine && v == have.Variant {
			return 100 - (i - mine), true
		}
	}
	return 0, false
}
