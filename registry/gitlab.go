package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/regclient/regclient/types/errs"
)

// GitLab's container registry delegates authentication to GitLab: it
// answers 401 with `WWW-Authenticate: Bearer realm="https://gitlab.example.com/jwt/auth",service="container_registry",scope=...`,
// and /jwt/auth issues a JWT for one repository to basic credentials
// (https://docs.gitlab.com/user/packages/container_registry/authenticate_with_container_registry/).
// regclient follows that challenge on its own, so the provider only hands
// it the basic credentials: a personal, project or group access token
// (read_registry scope) under any user name, or a deploy token under its
// own user name (gitlab+deploy-token-N).
//
// authURL (URUNNER_SECR_GITLAB_AUTH_URL) cannot redirect regclient's token
// requests: regclient always asks the realm the registry's challenge
// names, and a Provider only yields a user and password, so handing the
// registry a JWT fetched here would need a token per repository the
// Provider does not know, and regclient has no static bearer setting (its
// Host.Token, the "<token>" user of credential helpers, is sent to the
// realm as an OAuth2 refresh token, which /jwt/auth does not take). So
// authURL is where the provider checks the credentials before any
// registry request, the way `docker login` does: one
// GET <GitLab>/jwt/auth?service=container_registry with basic auth and no
// scope per run. authURL is GitLab's URL, to which /jwt/auth is added, or
// the endpoint's full URL (a GitLab under a relative URL root). A refusal fails the host with a message saying what is wrong,
// and no registry request is made with credentials known to be bad
// (GitLab bans an address after repeated failed logins).
const (
	gitlabService     = "container_registry"
	gitlabDefaultUser = "urunner"
	// gitlabDeployTokenPrefix starts the deploy tokens of recent GitLab
	// versions; they are refused under any user name but their own.
	gitlabDeployTokenPrefix = "gldt-"
	gitlabCheckTimeout      = 30 * time.Second
)

// gitlab presents a GitLab token as basic credentials, after checking it
// at authURL when one is configured.
type gitlab struct {
	host    string
	creds   Credentials
	authURL string // empty: no check
	client  *http.Client
}

func newGitLab(hc HostConfig) (Provider, error) {
	tok := hc.Token.Value
	if tok != "" && hc.Password.Value != "" {
		return nil, fmt.Errorf("registry %s (type gitlab): set token or password, not both", hc.Host)
	}
	if tok == "" {
		tok = hc.Password.Value
	}
	if tok == "" {
		return nil, fmt.Errorf("registry %s (type gitlab): a GitLab token with the read_registry scope is required", hc.Host)
	}
	user := hc.User
	if user == "" {
		if strings.HasPrefix(tok, gitlabDeployTokenPrefix) {
			return nil, fmt.Errorf("registry %s (type gitlab): a deploy token needs its user name (gitlab+deploy-token-N) in user", hc.Host)
		}
		// Any name will do with an access token: GitLab identifies the
		// token, not the name.
		user = gitlabDefaultUser
	}
	g := &gitlab{host: hc.Host, creds: Credentials{User: user, Password: tok}}
	if hc.AuthURL == "" {
		return g, nil
	}
	u, err := url.Parse(hc.AuthURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("registry %s (type gitlab): authURL: want GitLab's URL such as https://gitlab.example.com, got %q", hc.Host, hc.AuthURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/jwt/auth"
	}
	u.RawQuery = url.Values{"service": {gitlabService}, "client_id": {"urunner"}, "account": {user}}.Encode()
	g.authURL = u.String()
	g.client, err = gitlabClient(hc, u.Host)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// gitlabClient trusts the registry's CA bundle for GitLab too (one
// private CA usually signs both), and skips verification only when GitLab
// is the registry host itself, as tlsVerify is for that host only.
func gitlabClient(hc HostConfig, authHost string) (*http.Client, error) {
	tlsVerify := hc.TLSVerify
	if authHost != hc.Host {
		tlsVerify = nil
	}
	return hostHTTPClient(HostConfig{Host: hc.Host, CAFile: hc.CAFile, TLSVerify: tlsVerify})
}

func (g *gitlab) Credentials(ctx context.Context) (Credentials, error) {
	if g.authURL != "" {
		if err := g.check(ctx); err != nil {
			return Credentials{}, err
		}
	}
	return g.creds, nil
}

// check asks GitLab for a token without scope, as `docker login` does:
// valid credentials get one, wrong ones 401.
func (g *gitlab) check(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, gitlabCheckTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.authURL, nil)
	if err != nil {
		return fmt.Errorf("registry %s: check the GitLab token: %w", g.host, err)
	}
	req.SetBasicAuth(g.creds.User, g.creds.Password)
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("registry %s: check the GitLab token at %s: %w", g.host, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		// 403 too: GitLab answers it to a blocked user or a banned address.
		return fmt.Errorf("registry %s: GitLab at %s refused user %q and its token (%s): the token is wrong, expired or revoked, lacks the read_registry scope, or is a deploy token under another user name: %w",
			g.host, req.URL.Host, g.creds.User, resp.Status, errs.ErrHTTPUnauthorized)
	default:
		return fmt.Errorf("registry %s: check the GitLab token at %s: %s", g.host, req.URL.Redacted(), resp.Status)
	}
}
