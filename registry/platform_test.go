package registry

import "testing"

// Platforms match as containerd's matcher does: spellings of one platform
// are one platform, and a node runs older variants of its architecture.
func TestPlatforms(t *testing.T) {
	for _, tc := range []struct {
		node, image string
		same, runs  bool
	}{
		{"linux/arm64/v8", "linux/arm64", true, true},
		{"linux/arm64", "linux/arm64/v8", true, true},
		{"linux/aarch64", "linux/arm64", true, true},
		{"linux/arm/v7", "linux/arm/v7", true, true},
		{"linux/arm/v7", "linux/arm", true, true},
		{"linux/arm/v7", "linux/arm/v6", false, true},
		{"linux/arm/v6", "linux/arm/v7", false, false},
		{"linux/amd64", "linux/x86_64", true, true},
		{"linux/amd64/v3", "linux/amd64", false, true},
		{"linux/amd64", "linux/amd64/v3", false, false},
		{"linux/amd64", "linux/arm64", false, false},
		{"linux/amd64", "windows/amd64", false, false},
	} {
		node, err := ParsePlatform(tc.node)
		if err != nil {
			t.Fatal(err)
		}
		image, err := ParsePlatform(tc.image)
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Matches(image); got != tc.same {
			t.Errorf("%s matches %s = %v, want %v", tc.node, tc.image, got, tc.same)
		}
		if _, got := node.runs(image); got != tc.runs {
			t.Errorf("%s runs %s = %v, want %v", tc.node, tc.image, got, tc.runs)
		}
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/arm/"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) accepted it", bad)
		}
	}
}
