package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/ref"
)

// pushTimeout bounds the whole push: two platforms of about 25 MB each.
const pushTimeout = 10 * time.Minute

// push uploads img and tags its index as image; it returns the index
// digest. The tag moves last, once everything it points to is there.
// Credentials come from the Docker config (~/.docker/config.json and its
// credential helpers), as `docker login` or `regctl registry login` leave
// them.
func push(ctx context.Context, image string, insecure bool, img image) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	rf, err := ref.New(image)
	if err != nil {
		return "", fmt.Errorf("-image %q: %w", image, err)
	}
	if rf.Digest != "" {
		return "", fmt.Errorf("-image %q: want a tag, not a digest (the digest is the result)", image)
	}
	opts := []regclient.Opt{
		regclient.WithDockerCreds(),
		regclient.WithDockerCerts(),
		regclient.WithUserAgent("urunner-hack-image"),
	}
	if insecure {
		opts = append(opts, regclient.WithConfigHost(config.Host{Name: rf.Registry, TLS: config.TLSDisabled}))
	}
	rc := regclient.New(opts...)
	defer rc.Close(ctx, rf)

	pushed := map[string]bool{}
	putBlobs := func(blobs []blob) error {
		for _, b := range blobs {
			if pushed[b.desc.Digest.String()] {
				continue
			}
			if _, err := rc.BlobPut(ctx, rf, b.desc, bytes.NewReader(b.data)); err != nil {
				return fmt.Errorf("push %s: blob %s: %w", rf.CommonName(), b.desc.Digest, err)
			}
			pushed[b.desc.Digest.String()] = true
		}
		return nil
	}
	for _, p := range img.platforms {
		if err := putBlobs(p.blobs); err != nil {
			return "", err
		}
		d := p.manifest.GetDescriptor().Digest.String()
		if err := rc.ManifestPut(ctx, rf.SetDigest(d), p.manifest); err != nil {
			return "", fmt.Errorf("push %s: %s manifest: %w", rf.CommonName(), p.platform, err)
		}
		if p.sbom == nil {
			continue
		}
		if err := putBlobs(p.sbom.blobs); err != nil {
			return "", err
		}
		// regclient updates the referrers fallback tag itself when a
		// registry has no referrers API.
		sd := p.sbom.manifest.GetDescriptor().Digest.String()
		if err := rc.ManifestPut(ctx, rf.SetDigest(sd), p.sbom.manifest); err != nil {
			return "", fmt.Errorf("push %s: %s SBOM: %w", rf.CommonName(), p.platform, err)
		}
	}
	if err := rc.ManifestPut(ctx, rf, img.index); err != nil {
		return "", fmt.Errorf("push %s: index: %w", rf.CommonName(), err)
	}
	return img.index.GetDescriptor().Digest.String(), nil
}
