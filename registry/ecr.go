package registry

import "fmt"

func newECR(hc HostConfig) (Provider, error) {
	return nil, fmt.Errorf("registry %s: type aws_ecr is not implemented yet", hc.Host)
}
