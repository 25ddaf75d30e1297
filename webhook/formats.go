package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A notice is what one notification asks for: the pushed references
// (canonical, see canonical) and how many of its events were not pushes
// of a tag (blobs, pushes by digest, pulls, deletes...), which need no run.
type notice struct {
	refs    []string
	ignored int
	// ids are the registry's event ids, when it sends any: distribution
	// sends an event again, same id, when its first answer came late.
	ids []string
	// skipped are the events or references that could not be read, each
	// naming its field: they are logged and left out, never holding up
	// the others (a registry re-sends a refused envelope, in order,
	// forever).
	skipped []error
}

// take adds the reference pushed as host/repo:tag, or skips it with the
// field at fault named.
func (n *notice) take(field, host, repo, tag string) {
	r, err := pushedRef(host, repo, tag)
	if err != nil {
		n.skip(field, "%v", err)
		return
	}
	n.refs = append(n.refs, r)
}

func (n *notice) skip(field, format string, args ...any) {
	n.skipped = append(n.skipped, badField(field, format, args...))
}

// A fieldError is a malformed notification, naming the field at fault as
// a JSON path ("events[2].target.repository").
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// decode unmarshals a whole JSON document, refusing trailing data.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badField(te.Field, "want %s, got JSON %s", te.Type, te.Value)
		}
		return badField("body", "not a JSON document: %v", err)
	}
	if dec.More() {
		return badField("body", "data after the JSON document")
	}
	return nil
}

// distributionEnvelope is the CNCF distribution registry's notification
// envelope (media type application/vnd.docker.distribution.events.v1+json),
// which GitLab's container registry sends too. Only the fields urunner uses
// are decoded. https://distribution.github.io/distribution/about/notifications/
type distributionEnvelope struct {
	Events *[]distributionEvent `json:"events"`
}

type distributionEvent struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Target struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

// parseDistribution reads an envelope. A push event with a tag is a pushed
// reference, on the host the pusher addressed (request.host) unless hosts
// fixes it. Blob pushes, manifests pushed by digest only (the platforms
// of an index), pulls (urunner's own HEADs among them) and deletes are
// ignored.
func parseDistribution(body []byte, hosts hostRewrite) (notice, error) {
	var env distributionEnvelope
	if err := decode(body, &env); err != nil {
		return notice{}, err
	}
	if env.Events == nil {
		return notice{}, badField("events", "missing: not a distribution notification envelope")
	}
	var n notice
	for i, ev := range *env.Events {
		at := fmt.Sprintf("events[%d]", i)
		if ev.ID != "" {
			n.ids = append(n.ids, ev.ID)
		}
		if ev.Action != "push" || ev.Target.Tag == "" {
			n.ignored++
			continue
		}
		if ev.Target.Repository == "" {
			n.skip(at+".target.repository", "missing in a push of tag %.140q", ev.Target.Tag)
			continue
		}
		host := ev.Request.Host
		if host == "" && hosts.fixed == "" {
			n.skip(at+".request.host", "missing, and no host configured for this endpoint to use instead")
			continue
		}
		n.take(at+".target", hosts.apply(host), ev.Target.Repository, ev.Target.Tag)
	}
	return n, nil
}

// harborEvent is a Harbor webhook payload in either of its formats:
// "Default" ({"type":"PUSH_ARTIFACT","event_data":{...}}) or "CloudEvents"
// ({"specversion":"1.0","type":"harbor.artifact.pushed","data":{...}}).
// https://goharbor.io/docs/main/working-with-projects/project-configuration/configure-webhooks/
type harborEvent struct {
	Type        string           `json:"type"`
	SpecVersion string           `json:"specversion"`
	ID          string           `json:"id"`
	EventData   *harborEventData `json:"event_data"`
	Data        *harborEventData `json:"data"`
}

type harborEventData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
}

// parseHarbor reads a Harbor payload. Each resource of an artifact push
// with a tag is a pushed reference, named by its resource_url
// (host/project/repository:tag, the host being Harbor's external URL).
// A push by digest (Harbor then gives the digest as the tag) and every
// other event type are ignored.
func parseHarbor(body []byte, hosts hostRewrite) (notice, error) {
	var ev harborEvent
	if err := decode(body, &ev); err != nil {
		return notice{}, err
	}
	data, at := ev.EventData, "event_data"
	if ev.SpecVersion != "" {
		data, at = ev.Data, "data"
	}
	switch ev.Type {
	case "":
		return notice{}, badField("type", "missing: not a Harbor webhook payload")
	case "PUSH_ARTIFACT", "harbor.artifact.pushed":
	default:
		return notice{ignored: 1}, nil
	}
	if data == nil {
		return notice{}, badField(at, "missing in a %s event", ev.Type)
	}
	var n notice
	if ev.SpecVersion != "" && ev.ID != "" {
		// A CloudEvents id is unique per event, so a redelivery is known.
		n.ids = []string{ev.ID}
	}
	for i, res := range data.Resources {
		field := fmt.Sprintf("%s.resources[%d]", at, i)
		if res.Tag == "" || strings.HasPrefix(res.Tag, "sha256:") {
			n.ignored++
			continue
		}
		host, repo, ok := strings.Cut(res.ResourceURL, "/")
		if !ok || repo == "" {
			n.skip(field+".resource_url", "%.300q: want host/project/repository:tag", res.ResourceURL)
			continue
		}
		// resource_url ends with :tag (or @digest); the tag field is the
		// authority on which tag moved.
		if i := strings.LastIndexAny(repo, ":@"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		n.take(field, hosts.apply(host), repo, res.Tag)
	}
	return n, nil
}

// dockerHubPush is Docker Hub's repository webhook payload.
// https://docs.docker.com/docker-hub/repos/manage/webhooks/
type dockerHubPush struct {
	PushData *struct {
		Tag string `json:"tag"`
	} `json:"push_data"`
	Repository *struct {
		RepoName string `json:"repo_name"`
	} `json:"repository"`
}

// parseDockerHub reads a Docker Hub push: repository.repo_name at
// push_data.tag, on docker.io.
func parseDockerHub(body []byte) (notice, error) {
	var p dockerHubPush
	if err := decode(body, &p); err != nil {
		return notice{}, err
	}
	switch {
	case p.Repository == nil || p.Repository.RepoName == "":
		return notice{}, badField("repository.repo_name", "missing: not a Docker Hub push payload")
	case p.PushData == nil:
		return notice{}, badField("push_data", "missing: not a Docker Hub push payload")
	case p.PushData.Tag == "":
		// A push Docker Hub reports without a tag moved none.
		return notice{ignored: 1}, nil
	}
	var n notice
	repo := p.Repository.RepoName
	if !strings.Contains(repo, "/") {
		repo = "library/" + repo // an official image
	}
	n.take("repository.repo_name", "docker.io", repo, p.PushData.Tag)
	return n, nil
}

// genericPush is urunner's own format, for CI jobs and registries without
// a format of their own: {"references": ["registry.example.com/app:latest"]}.
type genericPush struct {
	References *[]string `json:"references"`
}

// maxGenericReferences bounds one generic notification; a CI pipeline
// pushing more has moved enough for a full run.
const maxGenericReferences = 1000

func parseGeneric(body []byte, hosts hostRewrite) (notice, error) {
	var p genericPush
	if err := decode(body, &p); err != nil {
		return notice{}, err
	}
	switch {
	case p.References == nil:
		return notice{}, badField("references", "missing")
	case len(*p.References) == 0:
		return notice{}, badField("references", "empty")
	case len(*p.References) > maxGenericReferences:
		return notice{}, badField("references", "%d references, at most %d", len(*p.References), maxGenericReferences)
	}
	var n notice
	for i, s := range *p.References {
		field := fmt.Sprintf("references[%d]", i)
		host, repo, tag, err := splitRef(s)
		if err != nil {
			n.skip(field, "%.300q %v", s, err)
			continue
		}
		if _, err := normalizeHost(host); err != nil {
			n.skip(field, "%.300q: want host/repository:tag (%v)", s, err)
			continue
		}
		n.take(field, hosts.apply(host), repo, tag)
	}
	return n, nil
}
