package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// gcpScope is the OAuth2 scope Artifact Registry and Container Registry
// accept for pulls.
const gcpScope = "https://www.googleapis.com/auth/cloud-platform"

// gcpProvider presents an OAuth2 access token of Google's Application
// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file,
// or the GCE/GKE metadata server, which GKE Workload Identity serves) as
// the password of the user oauth2accesstoken, which *-docker.pkg.dev and
// gcr.io accept:
// https://cloud.google.com/artifact-registry/docs/docker/authentication
type gcpProvider struct {
	host string

	mu     sync.Mutex // held across the token request, so concurrent callers make one
	cached Credentials
}

// newGCP finds no credentials yet: finding them may ask the metadata
// server, and construction makes no network call.
func newGCP(hc HostConfig) (Provider, error) {
	return &gcpProvider{host: hc.Host}, nil
}

func (p *gcpProvider) Credentials(ctx context.Context) (Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if credentialsReusable(p.cached) {
		return p.cached, nil
	}
	tok, err := gcpToken(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("registry %s: get an access token from Google application default credentials: %w", p.host, err)
	}
	p.cached = Credentials{User: "oauth2accesstoken", Password: tok.AccessToken, Expiry: tok.Expiry}
	return p.cached, nil
}

// gcpToken finds the application default credentials afresh for each new
// token: their token sources hand out a cached token until 10 seconds
// before it expires (only the metadata source can be told otherwise), and
// a run needs one that lasts.
//
// The metadata client under ADC takes no context, so the lookup runs in a
// goroutine to keep ctx's deadline; an abandoned lookup ends by the
// client's own timeouts.
func gcpToken(ctx context.Context) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		creds, err := google.FindDefaultCredentials(ctx, gcpScope)
		if err != nil {
			done <- result{err: err}
			return
		}
		tok, err := creds.TokenSource.Token()
		if err == nil && tok.AccessToken == "" {
			err = errors.New("empty access token")
		}
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
