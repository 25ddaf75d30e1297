package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Azure Container Registry takes Azure AD (Entra ID) identities in two hops
// (https://aka.ms/acr/authentication, and the protocol in
// https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md):
//
//  1. an Azure AD access token for the registry is exchanged at
//     POST https://<registry>/oauth2/exchange for an ACR refresh token;
//  2. the refresh token is the password of the user
//     00000000-0000-0000-0000-000000000000 on the registry's token service
//     (`az acr login --expose-token` prints the same pair), so regclient's
//     standard Docker token flow against the registry's /oauth2/token realm
//     does the rest, one access token per repository.
//
// urunner does hop 1 once per run and host, and keeps the refresh token
// until shortly before it expires (about three hours).
const (
	// acrRefreshUser is the user name that marks the password as an ACR
	// refresh token.
	acrRefreshUser = "00000000-0000-0000-0000-000000000000"
	// acrAADScope asks for an ACR-audience token. ACR accepts it whether
	// or not the registry still accepts ARM-audience tokens
	// (azureADAuthenticationAsArmPolicy), while an ARM token
	// (https://management.azure.com/.default) fails on registries that
	// disabled them:
	// https://learn.microsoft.com/azure/container-registry/container-registry-disable-authentication-as-arm
	acrAADScope = "https://containerregistry.azure.net/.default"
	// acrRenewBefore is how long before its expiry a cached refresh token
	// is replaced, so that it never expires during a run.
	acrRenewBefore = 5 * time.Minute
	// acrDefaultLife applies when a refresh token carries no exp claim.
	acrDefaultLife = time.Hour
	// acrExchangeTimeout bounds the exchange when the caller set no
	// deadline.
	acrExchangeTimeout = 30 * time.Second
)

// acr yields ACR refresh tokens for an Azure AD identity.
type acr struct {
	host     string
	exchange string // URL of the registry's /oauth2/exchange
	tenant   string // configured tenant; else taken from the AAD token
	cred     azcore.TokenCredential
	client   *http.Client

	mu     sync.Mutex
	cached Credentials
}

// newACR returns the provider of an Azure container registry: the admin
// user or a repository-scoped token's credential as they are when
// user/password are set, otherwise refresh tokens for a service principal
// or, without one, for azidentity's default chain (workload identity,
// managed identity, ...).
func newACR(hc HostConfig) (Provider, error) { return newACRWith(hc, nil) }

// newACRWith is newACR with aad, when not nil, sending azidentity's
// requests: tests use it to trust a local authority's certificate.
func newACRWith(hc HostConfig, aad policy.Transporter) (Provider, error) {
	sp := hc.ClientID != "" || hc.ClientSecret.Value != ""
	if hc.User != "" || hc.Password.Value != "" {
		if hc.User == "" || hc.Password.Value == "" {
			return nil, fmt.Errorf("registry %s (type azure_acr): a user needs a password and a password a user", hc.Host)
		}
		if sp {
			return nil, fmt.Errorf("registry %s (type azure_acr): set user/password or clientID/clientSecret, not both", hc.Host)
		}
		return basic{Credentials{User: hc.User, Password: hc.Password.Value}}, nil
	}
	cred, err := aadCredential(hc, aad, sp)
	if err != nil {
		return nil, err
	}
	client, err := hostHTTPClient(hc)
	if err != nil {
		return nil, err
	}
	scheme := "https"
	if hc.PlainHTTP {
		scheme = "http"
	}
	return &acr{
		host:     hc.Host,
		exchange: scheme + "://" + hc.Host + "/oauth2/exchange",
		tenant:   hc.TenantID,
		cred:     cred,
		client:   client,
	}, nil
}

// aadCredential is the Azure AD identity whose tokens acr exchanges: the
// service principal of hc when sp (its client ID or secret is set), else
// azidentity's default chain, at hc's authority host when one is set.
func aadCredential(hc HostConfig, aad policy.Transporter, sp bool) (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{Transport: aad}
	if hc.AuthorityHost != "" {
		u, err := url.Parse(hc.AuthorityHost)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("registry %s (type azure_acr): authorityHost: want an https URL such as https://login.microsoftonline.us/, got %q", hc.Host, hc.AuthorityHost)
		}
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: hc.AuthorityHost}
	}
	// An explicit authority is trusted as configured: instance discovery
	// would ask login.microsoft.com about it, which a private or
	// disconnected cloud (Azure Stack) cannot reach.
	disableDiscovery := hc.AuthorityHost != ""

	var (
		cred azcore.TokenCredential
		err  error
	)
	switch {
	case sp && (hc.TenantID == "" || hc.ClientID == "" || hc.ClientSecret.Value == ""):
		return nil, fmt.Errorf("registry %s (type azure_acr): a service principal needs tenantID, clientID and clientSecret; "+
			"for workload or managed identity set none of them (azidentity reads AZURE_CLIENT_ID)", hc.Host)
	case sp:
		cred, err = azidentity.NewClientSecretCredential(hc.TenantID, hc.ClientID, hc.ClientSecret.Value,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery})
	default:
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery, TenantID: hc.TenantID,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("registry %s (type azure_acr): %w", hc.Host, err)
	}
	return cred, nil
}

// hostHTTPClient is a provider's client for its own requests to hc.Host,
// with the TLS settings urunner uses for the registry: its CA bundle on
// top of the system's, and skipping verification only when configured
// for this host. It does not share the resolver's transport, which
// counts, rewrites and rate-limits regclient's requests only.
func hostHTTPClient(hc HostConfig) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if hc.TLSVerify != nil && !*hc.TLSVerify {
		tc.InsecureSkipVerify = true //#nosec G402 -- the user asked for it for this host only
	}
	if hc.CAFile != "" {
		pem, err := os.ReadFile(hc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: caFile: %w", hc.Host, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: caFile %s holds no PEM certificate", hc.Host, hc.CAFile)
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}, nil
}

// noRedirect keeps a provider's client from following a redirect: its
// requests carry tokens (an Azure AD token in the exchange's form, a GitLab
// token in its header), and Go would send a 307's body on to wherever the
// redirect points. The redirect comes back as the answer, an error.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Credentials returns the cached refresh token, or gets an Azure AD token
// and exchanges it for a new one.
func (a *acr) Credentials(ctx context.Context) (Credentials, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cached.Password != "" && time.Until(a.cached.Expiry) > acrRenewBefore {
		return a.cached, nil
	}
	tok, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{acrAADScope}})
	if err != nil {
		return Credentials{}, fmt.Errorf("registry %s: get an Azure AD token: %w", a.host, err)
	}
	tenant := a.tenant
	if tenant == "" {
		// The default chain may not know its tenant; the token does.
		tenant = jwtClaims(tok.Token).Tid
	}
	refresh, err := a.exchangeToken(ctx, tok.Token, tenant)
	if err != nil {
		return Credentials{}, err
	}
	expiry := time.Now().Add(acrDefaultLife)
	if exp := jwtClaims(refresh).Exp; exp > 0 {
		expiry = time.Unix(exp, 0)
	}
	a.cached = Credentials{User: acrRefreshUser, Password: refresh, Expiry: expiry}
	return a.cached, nil
}

// exchangeToken trades an Azure AD access token for an ACR refresh token.
func (a *acr) exchangeToken(ctx context.Context, aadToken, tenant string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, acrExchangeTimeout)
		defer cancel()
	}
	form := url.Values{
		"grant_type":   {"access_token"},
		"service":      {a.host},
		"access_token": {aadToken},
	}
	if tenant != "" {
		form.Set("tenant", tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.exchange, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("registry %s: exchange the Azure AD token: %w", a.host, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("registry %s: exchange the Azure AD token: %w", a.host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("registry %s: exchange the Azure AD token: %w", a.host, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("registry %s refused the Azure AD token (%s%s): does the identity have a pull role (AcrPull) on the registry, in the registry's tenant?",
			a.host, resp.Status, errorDetail(body))
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("registry %s has no /oauth2/exchange (%s): is it an Azure container registry?", a.host, resp.Status)
	case resp.StatusCode/100 == 3:
		return "", fmt.Errorf("registry %s: exchange the Azure AD token: redirected (%s) to %q; urunner never sends a token on a redirect: set the registry's host to where it redirects",
			a.host, resp.Status, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("registry %s: exchange the Azure AD token: %s%s", a.host, resp.Status, errorDetail(body))
	}
	var out struct {
		RefreshToken string `json:"refresh_token"` //#nosec G117 -- the response carries a secret by design
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return "", fmt.Errorf("registry %s: exchange the Azure AD token: %w", a.host, errors.New("answer holds no refresh_token"))
	}
	return out.RefreshToken, nil
}

// errorDetail quotes the start of an error response for the log: ACR
// explains refusals in its body ({"errors":[{"code":"UNAUTHORIZED",...}]}).
func errorDetail(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return ""
	}
	const limit = 200
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return ": " + s
}

// jwtClaims reads the claims urunner needs from a JWT without verifying
// it: the issuer verifies its own tokens, urunner only plans around them.
// Anything unreadable gives zero claims.
func jwtClaims(token string) (c struct {
	Exp int64  `json:"exp"`
	Tid string `json:"tid"`
}) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c
	}
	_ = json.Unmarshal(b, &c)
	return c
}
