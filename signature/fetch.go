package signature

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"
)

// errContent marks content a signer (or anyone who may push) controls that
// is not what it should be: a problem with that signature, not a failure
// to reach the registry.
var errContent = errors.New("bad content")

// readBlob reads the blob d of r's repository, refusing one too large to
// be a signature. A blob the registry does not have is bad content (a
// manifest naming a missing blob); any other failure is the registry's.
func readBlob(ctx context.Context, rc *regclient.RegClient, r ref.Ref, d descriptor.Descriptor) ([]byte, error) {
	if d.Size > maxBlobSize {
		return nil, fmt.Errorf("%w: blob %s is %d bytes, more than %d", errContent, shortDigest(d.Digest.String()), d.Size, maxBlobSize)
	}
	br, err := rc.BlobGet(ctx, r, d)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, fmt.Errorf("%w: blob %s is missing", errContent, shortDigest(d.Digest.String()))
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", d.Digest, err)
	}
	defer func() { _ = br.Close() }()
	// regclient's reader checks size and digest against d at the end.
	b, err := io.ReadAll(io.LimitReader(br, maxBlobSize+1))
	switch {
	case errors.Is(err, errs.ErrDigestMismatch), errors.Is(err, errs.ErrShortRead), errors.Is(err, errs.ErrSizeLimitExceeded):
		return nil, fmt.Errorf("%w: blob %s: %w", errContent, shortDigest(d.Digest.String()), err)
	case err != nil:
		return nil, fmt.Errorf("read blob %s: %w", d.Digest, err)
	}
	return b, nil
}
