package registry

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"
)

// tokenRefreshMargin is how long before its expiry a cached registry token
// is replaced, so that a token handed out outlives the run that uses it.
const tokenRefreshMargin = 5 * time.Minute

// credentialsReusable reports whether cached credentials can be handed out
// again.
func credentialsReusable(c Credentials) bool {
	return c.Password != "" && (c.Expiry.IsZero() || time.Until(c.Expiry) > tokenRefreshMargin)
}

// ecrHostRE matches the hosts of private ECR registries and captures the
// account and the region: ACCOUNT.dkr.ecr.REGION.amazonaws.com, its FIPS
// (dkr.ecr-fips), dual-stack (ACCOUNT.dkr-ecr.REGION.on.aws), China,
// European Sovereign Cloud and isolated-region forms. The suffixes are
// those amazon-ecr-credential-helper accepts:
// https://github.com/awslabs/amazon-ecr-credential-helper/blob/main/ecr-login/api/client.go
var ecrHostRE = regexp.MustCompile(`^(\d{12})\.dkr[.-]ecr(?:-fips)?\.([a-z0-9][a-z0-9-]*)\.` +
	`(?:amazonaws\.(?:com|com\.cn|eu)|on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$`)

// parseECRHost returns the account and region a private ECR registry host
// names, or ok false for any other host.
func parseECRHost(host string) (account, region string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	m := ecrHostRE.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// ecrProvider presents the token of ECR's GetAuthorizationToken as the
// password of the user AWS, as `aws ecr get-login-password` does. The
// token lasts 12 hours and is reused until shortly before it expires.
type ecrProvider struct {
	host       string
	registryID string // empty: the caller's own account
	api        *ecr.Client

	mu     sync.Mutex // held across the API call, so concurrent callers make one
	cached Credentials
}

func newECR(hc HostConfig) (Provider, error) {
	fail := func(err error) (Provider, error) {
		return nil, fmt.Errorf("registry %s (type aws_ecr): %w", hc.Host, err)
	}
	account, hostRegion, _ := parseECRHost(hc.Host)
	region := cmp.Or(hc.Region, hostRegion)
	if region == "" {
		return fail(&FieldError{"region", errors.New("required: the host is not ACCOUNT.dkr.ecr.REGION.amazonaws.com, so it does not name the region")})
	}
	keyID, secret := hc.AccessKeyID.Value, hc.SecretAccessKey.Value
	switch {
	case keyID != "" && secret == "":
		return fail(&FieldError{"secretAccessKey", errors.New("required with accessKeyID")})
	case keyID == "" && secret != "":
		return fail(&FieldError{"accessKeyID", errors.New("required with secretAccessKey")})
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if keyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, "")))
	}
	// Loading reads the environment and the shared config files only; the
	// default chain (web identity, Pod Identity, instance role) is asked on
	// the first API call, so no network call happens here.
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return fail(fmt.Errorf("load AWS configuration: %w", err))
	}
	api := ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if hc.Endpoint != "" {
			o.BaseEndpoint = aws.String(hc.Endpoint)
		}
	})
	return &ecrProvider{host: hc.Host, registryID: cmp.Or(hc.RegistryID, account), api: api}, nil
}

func (p *ecrProvider) Credentials(ctx context.Context) (Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if credentialsReusable(p.cached) {
		return p.cached, nil
	}
	var in ecr.GetAuthorizationTokenInput
	if p.registryID != "" {
		// Deprecated in the API, as a token now serves every registry the
		// identity may use, but still accepted: the request names the
		// registry it is for.
		in.RegistryIds = []string{p.registryID}
	}
	out, err := p.api.GetAuthorizationToken(ctx, &in)
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException" {
			return Credentials{}, fmt.Errorf("registry %s: ECR GetAuthorizationToken: the AWS identity needs the IAM permission ecr:GetAuthorizationToken: %w", p.host, err)
		}
		return Credentials{}, fmt.Errorf("registry %s: ECR GetAuthorizationToken: %w", p.host, err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return Credentials{}, fmt.Errorf("registry %s: ECR GetAuthorizationToken returned no token", p.host)
	}
	data := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*data.AuthorizationToken)
	if err != nil {
		return Credentials{}, fmt.Errorf("registry %s: ECR authorization token is not base64: %w", p.host, err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return Credentials{}, fmt.Errorf("registry %s: ECR authorization token is not USER:PASSWORD", p.host)
	}
	c := Credentials{User: user, Password: pass}
	if data.ExpiresAt != nil {
		c.Expiry = *data.ExpiresAt
	}
	p.cached = c
	return c, nil
}
