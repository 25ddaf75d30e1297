package main

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	v1 "github.com/regclient/regclient/types/oci/v1"
	"github.com/regclient/regclient/types/platform"
)

// The OCI label keys (image-spec annotations.md), on each image config and
// on the index; the Dockerfile sets the same (layout_test.go checks).
const (
	labelTitle    = "org.opencontainers.image.title"
	labelSource   = "org.opencontainers.image.source"
	labelRevision = "org.opencontainers.image.revision"
	labelVersion  = "org.opencontainers.image.version"
	labelLicenses = "org.opencontainers.image.licenses"
	labelCreated  = "org.opencontainers.image.created"
)

// defaultPath is what Docker's Dockerfile frontend sets in a scratch
// image; nothing is on it, the entrypoint being absolute.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// blob is content to push, with its descriptor.
type blob struct {
	desc descriptor.Descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	return blob{
		desc: descriptor.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		data: data,
	}
}

// platformImage is one platform's image: its blobs (config and layers),
// manifest, and the SBOM that refers to it.
type platformImage struct {
	platform platform.Platform
	blobs    []blob
	manifest manifest.Manifest
	sbom     *artifact
}

// artifact is an OCI 1.1 artifact manifest with its blobs.
type artifact struct {
	blobs    []blob
	manifest manifest.Manifest
}

// image is everything to push: the platforms' images, then the index.
type image struct {
	platforms []platformImage
	index     manifest.Manifest
}

func (img image) platformNames() []string {
	var names []string
	for _, p := range img.platforms {
		names = append(names, p.platform.String())
	}
	return names
}

func labels(m meta) map[string]string {
	return map[string]string{
		labelTitle:    "urunner",
		labelSource:   m.source,
		labelRevision: m.revision,
		labelVersion:  m.version,
		labelLicenses: m.licenses,
		labelCreated:  m.created.Format(time.RFC3339),
	}
}

// build makes the image in memory: a base layer shared by all platforms,
// and per platform a layer holding /urunner, a config and a manifest.
func build(o options, base []entry) (image, error) {
	baseLayer, err := tarLayer(base, o.meta.created)
	if err != nil {
		return image{}, fmt.Errorf("base layer: %w", err)
	}
	var img image
	var descs []descriptor.Descriptor
	for _, b := range o.binaries {
		p, err := buildPlatform(o, b, baseLayer)
		if err != nil {
			return image{}, err
		}
		desc := p.manifest.GetDescriptor()
		descs = append(descs, descriptor.Descriptor{
			MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: &p.platform,
		})
		img.platforms = append(img.platforms, p)
	}
	img.index, err = manifest.New(manifest.WithOrig(v1.Index{
		Versioned:   v1.IndexSchemaVersion,
		MediaType:   mediatype.OCI1ManifestList,
		Manifests:   descs,
		Annotations: labels(o.meta),
	}))
	if err != nil {
		return image{}, fmt.Errorf("build index: %w", err)
	}
	return img, nil
}

func buildPlatform(o options, b binary, baseLayer layer) (platformImage, error) {
	exe, err := os.ReadFile(b.path)
	if err != nil {
		return platformImage{}, fmt.Errorf("-binary %s: %w", b.platform(), err)
	}
	if err := checkBinary(b); err != nil {
		return platformImage{}, err
	}
	binLayer, err := tarLayer([]entry{{path: binaryPath, mode: 0o755, data: exe}}, o.meta.created)
	if err != nil {
		return platformImage{}, fmt.Errorf("%s layer: %w", b.platform(), err)
	}
	plat := platform.Platform{OS: b.os, Architecture: b.arch}
	created := o.meta.created
	conf, err := json.Marshal(v1.Image{
		Created:  &created,
		Platform: plat,
		Config: v1.ImageConfig{
			User:       imageUser,
			Env:        []string{defaultPath},
			Entrypoint: []string{"/" + binaryPath},
			WorkingDir: "/",
			Labels:     labels(o.meta),
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{baseLayer.diffID, binLayer.diffID}},
		History: []v1.History{
			{Created: &created, CreatedBy: "hack/image: root files (passwd, group, CA roots, zoneinfo)"},
			{Created: &created, CreatedBy: "hack/image: /urunner " + o.meta.version},
		},
	})
	if err != nil {
		return platformImage{}, fmt.Errorf("%s config: %w", b.platform(), err)
	}
	confBlob := newBlob(mediatype.OCI1ImageConfig, conf)
	m, err := manifest.New(manifest.WithOrig(v1.Manifest{
		Versioned: v1.ManifestSchemaVersion,
		MediaType: mediatype.OCI1Manifest,
		Config:    confBlob.desc,
		Layers:    []descriptor.Descriptor{baseLayer.desc, binLayer.desc},
	}))
	if err != nil {
		return platformImage{}, fmt.Errorf("%s manifest: %w", b.platform(), err)
	}
	p := platformImage{
		platform: plat,
		blobs:    []blob{confBlob, {baseLayer.desc, baseLayer.data}, {binLayer.desc, binLayer.data}},
		manifest: m,
	}
	if o.sbom {
		if p.sbom, err = sbomArtifact(o.meta, b, m.GetDescriptor()); err != nil {
			return platformImage{}, err
		}
	}
	return p, nil
}

// elfMachines maps GOARCH to the ELF machine its binaries declare.
var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"386": elf.EM_386, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// checkBinary refuses a binary that would run wrongly, or not at all, on
// a scratch root: built for another platform than it is labelled, linked
// dynamically (no libc or loader there), or with cgo.
func checkBinary(b binary) error {
	info, err := buildinfo.ReadFile(b.path)
	if err != nil {
		return fmt.Errorf("-binary %s=%s: not a Go binary: %w", b.platform(), b.path, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if got := settings["GOOS"] + "/" + settings["GOARCH"]; got != b.platform() {
		return fmt.Errorf("-binary %s=%s: built for %s", b.platform(), b.path, got)
	}
	if settings["CGO_ENABLED"] != "0" {
		return fmt.Errorf("-binary %s=%s: built with CGO_ENABLED=%q, want 0 (a static binary)", b.platform(), b.path, settings["CGO_ENABLED"])
	}
	if b.os != "linux" {
		return nil
	}
	f, err := elf.Open(b.path)
	if err != nil {
		return fmt.Errorf("-binary %s=%s: %w", b.platform(), b.path, err)
	}
	defer f.Close()
	if want, ok := elfMachines[b.arch]; ok && f.Machine != want {
		return fmt.Errorf("-binary %s=%s: ELF machine %v, want %v", b.platform(), b.path, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("-binary %s=%s: dynamically linked (%v)", b.platform(), b.path, p.Type)
		}
	}
	return nil
}

// labelKeys are the label keys the image sets, sorted.
func labelKeys() []string {
	return slices.Sorted(maps.Keys(labels(meta{})))
}
