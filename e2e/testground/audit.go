package testground

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// auditPolicy records every request a service account makes, at the
// Metadata level (who, what, where, the answer; no bodies), and nothing
// else: the components' own requests would drown them.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
`

// auditArgs writes the audit policy into dir and returns the API server
// flags that apply it. The log backend blocks: an event is written before
// its request's handler returns, so a request answered is a request logged.
func auditArgs(dir string) (logPath string, args []string, err error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return "", nil, fmt.Errorf("write audit policy: %w", err)
	}
	logPath = filepath.Join(dir, "audit.log")
	return logPath, []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + logPath,
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
		"--audit-log-maxbackup=0",
	}, nil
}

// AuditEvent is what the audit log says of one request.
type AuditEvent struct {
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	// ObjectRef is nil for a request that is not for a resource
	// (/version, /api discovery).
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// String is the request as a line of a test's message.
func (e AuditEvent) String() string {
	return fmt.Sprintf("%s %s → %d", e.Verb, e.RequestURI, e.ResponseStatus.Code)
}

// AuditEvents returns the audited requests of the user named username
// (system:serviceaccount:NAMESPACE:NAME), oldest first. It needs
// ClusterOptions.AuditServiceAccounts.
func (c *Cluster) AuditEvents(username string) ([]AuditEvent, error) {
	if c.auditLog == "" {
		return nil, fmt.Errorf("the cluster was started without ClusterOptions.AuditServiceAccounts")
	}
	f, err := os.Open(c.auditLog)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		// Cheap filter first: most lines are other users'.
		if !strings.Contains(string(line), `"username":"`+username+`"`) {
			continue
		}
		var e AuditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if e.User.Username == username {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
