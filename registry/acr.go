package registry

import "fmt"

func newACR(hc HostConfig) (Provider, error) {
	return nil, fmt.Errorf("registry %s: type azure_acr is not implemented yet", hc.Host)
}
