package registry

import "fmt"

func newGitLab(hc HostConfig) (Provider, error) {
	return nil, fmt.Errorf("registry %s: type gitlab is not implemented yet", hc.Host)
}
