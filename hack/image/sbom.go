package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	v1 "github.com/regclient/regclient/types/oci/v1"
)

// sbomMediaType is SPDX JSON's registered media type, used both as the
// artifact type and as the type of its one layer, as syft and cosign do.
const sbomMediaType = "application/spdx+json"

// caModule is where the image's CA roots come from (layout.go).
const caModule = "golang.org/x/crypto/x509roots/fallback"

// The subset of SPDX 2.3 (https://spdx.github.io/spdx-spec/v2.3/) the SBOM
// uses.
type (
	spdxDocument struct {
		SPDXVersion       string             `json:"spdxVersion"`
		DataLicense       string             `json:"dataLicense"`
		SPDXID            string             `json:"SPDXID"`
		Name              string             `json:"name"`
		DocumentNamespace string             `json:"documentNamespace"`
		CreationInfo      spdxCreationInfo   `json:"creationInfo"`
		Packages          []spdxPackage      `json:"packages"`
		Relationships     []spdxRelationship `json:"relationships"`
	}
	spdxCreationInfo struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	}
	spdxPackage struct {
		Name             string            `json:"name"`
		SPDXID           string            `json:"SPDXID"`
		VersionInfo      string            `json:"versionInfo,omitempty"`
		DownloadLocation string            `json:"downloadLocation"`
		FilesAnalyzed    bool              `json:"filesAnalyzed"`
		LicenseDeclared  string            `json:"licenseDeclared,omitempty"`
		Comment          string            `json:"comment,omitempty"`
		ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
	}
	spdxExternalRef struct {
		ReferenceCategory string `json:"referenceCategory"`
		ReferenceType     string `json:"referenceType"`
		ReferenceLocator  string `json:"referenceLocator"`
	}
	spdxRelationship struct {
		Element string `json:"spdxElementId"`
		Type    string `json:"relationshipType"`
		Related string `json:"relatedSpdxElement"`
	}
)

// sbomArtifact attaches an SPDX SBOM to a platform's manifest (its
// subject), so that `regctl artifact list` or `cosign tree` find it by the
// referrers API.
func sbomArtifact(m meta, b binary, subject descriptor.Descriptor) (*artifact, error) {
	doc, err := sbom(m, b)
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%s SBOM: %w", b.platform(), err)
	}
	empty := newBlob(mediatype.OCI1Empty, descriptor.EmptyData)
	doc1 := newBlob(sbomMediaType, data)
	man, err := manifest.New(manifest.WithOrig(v1.Manifest{
		Versioned:    v1.ManifestSchemaVersion,
		MediaType:    mediatype.OCI1Manifest,
		ArtifactType: sbomMediaType,
		Config:       empty.desc,
		Layers:       []descriptor.Descriptor{doc1.desc},
		Subject:      &descriptor.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations:  map[string]string{labelCreated: m.created.Format(time.RFC3339)},
	}))
	if err != nil {
		return nil, fmt.Errorf("%s SBOM manifest: %w", b.platform(), err)
	}
	return &artifact{blobs: []blob{empty, doc1}, manifest: man}, nil
}

// sbom describes one platform's image: the urunner binary's modules as its
// debug/buildinfo records them (exactly what was linked), the Go standard
// library, and where the CA roots and time zones came from.
func sbom(m meta, b binary) (spdxDocument, error) {
	info, err := buildinfo.ReadFile(b.path)
	if err != nil {
		return spdxDocument{}, fmt.Errorf("%s SBOM: read build info of %s: %w", b.platform(), b.path, err)
	}
	exe, err := os.ReadFile(b.path)
	if err != nil {
		return spdxDocument{}, fmt.Errorf("%s SBOM: %w", b.platform(), err)
	}
	sum := sha256.Sum256(exe)

	main := goPackage(info.Main.Path, m.version)
	main.DownloadLocation = "git+" + m.source + "@" + m.revision
	main.LicenseDeclared = m.licenses
	goVersion := strings.TrimPrefix(info.GoVersion, "go")
	stdlib := spdxPackage{
		Name: "stdlib", SPDXID: "SPDXRef-Package-go-stdlib", VersionInfo: info.GoVersion,
		DownloadLocation: "https://go.dev/dl/", LicenseDeclared: "BSD-3-Clause",
		ExternalRefs: []spdxExternalRef{purl("pkg:golang/stdlib@" + goVersion)},
	}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        fmt.Sprintf("urunner %s %s", m.version, b.platform()),
		// Unique per binary, as SPDX requires, and the same on a rebuild.
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s/%s/%s", strings.TrimSuffix(m.source, "/"), m.version, b.platform(), hex.EncodeToString(sum[:])),
		CreationInfo: spdxCreationInfo{
			Created:  m.created.Format(time.RFC3339),
			Creators: []string{"Tool: urunner-hack-image"},
		},
		Packages: []spdxPackage{main, stdlib},
	}
	describe := func(id string) {
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", id})
	}
	describe(main.SPDXID)
	doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", stdlib.SPDXID})
	ids := map[string]int{main.SPDXID: 1, stdlib.SPDXID: 1}
	for _, dep := range info.Deps {
		if dep.Replace != nil {
			dep = dep.Replace
		}
		p := goPackage(dep.Path, dep.Version)
		// Two paths may sanitize to one ID (a/b-c, a/b/c); IDs must be unique.
		if ids[p.SPDXID]++; ids[p.SPDXID] > 1 {
			p.SPDXID += fmt.Sprintf("-%d", ids[p.SPDXID])
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", p.SPDXID})
	}
	for _, p := range imageFilePackages(info.GoVersion) {
		doc.Packages = append(doc.Packages, p)
		describe(p.SPDXID)
	}
	return doc, nil
}

// imageFilePackages are the image's data files: the CA roots, from the
// x509roots module this program was built with, and the zoneinfo of the
// Go toolchain.
func imageFilePackages(goVersion string) []spdxPackage {
	ca := spdxPackage{
		Name: caModule, SPDXID: spdxID("ca-certificates"), DownloadLocation: "NOASSERTION",
		Comment: "Mozilla NSS roots at /" + caBundle,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == caModule {
				ca.VersionInfo = d.Version
				ca.DownloadLocation = "https://proxy.golang.org/" + caModule + "/@v/" + d.Version + ".zip"
				ca.ExternalRefs = []spdxExternalRef{purl(goPURL(caModule, d.Version))}
			}
		}
	}
	tz := spdxPackage{
		Name: "tzdata", SPDXID: spdxID("tzdata"), VersionInfo: goVersion, DownloadLocation: "https://go.dev/dl/",
		Comment: "IANA time zone database at /" + zoneinfoDir + ", from lib/time/zoneinfo.zip of " + goVersion,
	}
	return []spdxPackage{ca, tz}
}

func goPackage(path, version string) spdxPackage {
	return spdxPackage{
		Name:             path,
		SPDXID:           spdxID("go-module-" + path),
		VersionInfo:      version,
		DownloadLocation: "https://proxy.golang.org/" + path + "/@v/" + version + ".zip",
		ExternalRefs:     []spdxExternalRef{purl(goPURL(path, version))},
	}
}

func purl(locator string) spdxExternalRef {
	return spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: locator}
}

// goPURL is the package URL of a Go module
// (https://github.com/package-url/purl-spec, type golang); "+" in a
// version such as v2.0.0+incompatible must be escaped.
func goPURL(path, version string) string {
	return "pkg:golang/" + path + "@" + strings.ReplaceAll(version, "+", "%2B")
}

// spdxID makes an SPDX identifier, which allows only letters, digits, "."
// and "-".
func spdxID(name string) string {
	var b strings.Builder
	b.WriteString("SPDXRef-Package-")
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}
