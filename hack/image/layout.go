package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's user, as distroless names it, so that the chart's
// runAsUser and the image's USER agree.
const (
	nonrootID   = 65532
	imageUser   = "65532:65532"
	binaryPath  = "urunner" // in the root: the entrypoint is /urunner
	caBundle    = "etc/ssl/certs/ca-certificates.crt"
	zoneinfoDir = "usr/share/zoneinfo"
)

// entry is a file or directory of a layer; path is relative to the root.
type entry struct {
	path     string
	dir      bool
	mode     int64 // permission bits, sticky bit included
	uid, gid int
	data     []byte
}

// baseEntries are the root files, identical on every platform: what
// distroless/static gives a Go program, minus its Debian package records.
//
//   - /etc/passwd, /etc/group: names for root, nobody and nonroot (65532), so
//     that user lookups and HOME work;
//   - /etc/nsswitch.conf: hosts from /etc/hosts before DNS, which Go's
//     resolver otherwise guesses;
//   - /etc/ssl/certs/ca-certificates.crt: the Mozilla roots, the first file
//     Go's crypto/x509 reads on Linux; from golang.org/x/crypto/x509roots,
//     pinned in go.sum, so the bundle is reproducible;
//   - /usr/share/zoneinfo: the IANA zones, for maintenance windows
//     (URUNNER_CONF_WINDOW names zones); from the Go toolchain;
//   - /tmp (sticky, world-writable), /home/nonroot (nonroot's), /root.
//
// No shell and no other program: the only executable is /urunner.
func baseEntries(zoneinfoZip string) ([]entry, error) {
	es := []entry{
		dir("etc", 0o755), dir("etc/ssl", 0o755), dir("etc/ssl/certs", 0o755),
		dir("home", 0o755), {path: "home/nonroot", dir: true, mode: 0o700, uid: nonrootID, gid: nonrootID},
		dir("root", 0o700), dir("tmp", 0o1777),
		dir("usr", 0o755), dir("usr/share", 0o755),
		file("etc/passwd", 0o644, "root:x:0:0:root:/root:/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
		file("etc/group", 0o644, "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"),
		file("etc/nsswitch.conf", 0o644, "hosts: files dns\n"),
		file(caBundle, 0o644, string(caPEM())),
	}
	zones, err := zoneEntries(zoneinfoZip)
	if err != nil {
		return nil, err
	}
	return sorted(append(es, zones...)), nil
}

func dir(p string, mode int64) entry { return entry{path: p, dir: true, mode: mode} }

func file(p string, mode int64, data string) entry {
	return entry{path: p, mode: mode, data: []byte(data)}
}

// caPEM is the x509roots bundle as PEM. A root with a constraint PEM
// cannot carry (a distrust-after date) is left out: trusting it without
// the constraint would trust what Mozilla distrusts.
func caPEM() []byte {
	var b bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return b.Bytes()
}

// zoneEntries unpacks the Go toolchain's zoneinfo.zip under
// /usr/share/zoneinfo, where time.LoadLocation looks first.
func zoneEntries(zipPath string) ([]entry, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, fmt.Errorf("read the time zone database (-zoneinfo): %w", err)
	}
	defer zr.Close()
	dirs := map[string]bool{zoneinfoDir: true}
	var es []entry
	for _, f := range zr.File {
		name := path.Clean(f.Name)
		if f.FileInfo().IsDir() {
			continue
		}
		if !filepath.IsLocal(name) {
			return nil, fmt.Errorf("read the time zone database %s: unsafe name %q", zipPath, f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("read the time zone database %s: %s: %w", zipPath, f.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read the time zone database %s: %s: %w", zipPath, f.Name, err)
		}
		p := path.Join(zoneinfoDir, name)
		es = append(es, entry{path: p, mode: 0o644, data: data})
		for d := path.Dir(p); d != zoneinfoDir; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("read the time zone database %s: no zones in it", zipPath)
	}
	for d := range dirs {
		es = append(es, dir(d, 0o755))
	}
	return es, nil
}

// sorted orders entries by path, so that each directory precedes what
// it holds and the tar is the same on every run.
func sorted(es []entry) []entry {
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	return es
}

// layer is a gzipped tar blob and the digest of the uncompressed tar, which
// the image config lists.
type layer struct {
	desc   descriptor.Descriptor
	diffID digest.Digest
	data   []byte
}

// tarLayer writes entries into a reproducible layer: fixed times, numeric
// owners, no user or host names.
func tarLayer(es []entry, mtime time.Time) (layer, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, e := range es {
		h := &tar.Header{
			Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e.data)),
		}
		if e.dir {
			h.Name += "/"
			h.Typeflag = tar.TypeDir
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return layer{}, fmt.Errorf("write layer entry %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return layer{}, fmt.Errorf("write layer entry %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return layer{}, fmt.Errorf("write layer: %w", err)
	}
	var gzBuf bytes.Buffer
	// A zero gzip header (no name, no time) keeps the blob reproducible.
	gw := gzip.NewWriter(&gzBuf)
	if _, err := gw.Write(tarBuf.Bytes()); err != nil {
		return layer{}, fmt.Errorf("compress layer: %w", err)
	}
	if err := gw.Close(); err != nil {
		return layer{}, fmt.Errorf("compress layer: %w", err)
	}
	return layer{
		desc: descriptor.Descriptor{
			MediaType: mediatype.OCI1LayerGzip,
			Digest:    digest.FromBytes(gzBuf.Bytes()),
			Size:      int64(gzBuf.Len()),
		},
		diffID: digest.FromBytes(tarBuf.Bytes()),
		data:   gzBuf.Bytes(),
	}, nil
}

// writeRootfs writes entries under root for the Dockerfile, which copies
// them into a scratch image. Owners are not set here: the Dockerfile's
// COPY --chown gives /home/nonroot to 65532, as the layer does.
func writeRootfs(root string, es []entry) error {
	for _, e := range es {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		if e.dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("write rootfs: %w", err)
			}
		} else if err := os.WriteFile(p, e.data, 0o644); err != nil {
			return fmt.Errorf("write rootfs: %w", err)
		}
		// Chmod after creation: the umask must not change the modes, and
		// os.FileMode spells setuid/sticky bits its own way.
		mode := os.FileMode(e.mode & 0o777)
		if e.mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("write rootfs: %w", err)
		}
	}
	return nil
}
