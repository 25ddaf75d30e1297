package registry

import "fmt"

func newGCP(hc HostConfig) (Provider, error) {
	return nil, fmt.Errorf("registry %s: type gcp is not implemented yet", hc.Host)
}
