package signature

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/go-openapi/strfmt"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"
	v1 "github.com/regclient/regclient/types/oci/v1"
	"github.com/regclient/regclient/types/ref"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1" // the entry kind cosign sign proposes
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/proto"
)

// A keyless signature must carry a transparency log entry (issue 22, item
// 17). Two ways to make the bundles `cosign sign` writes with Rekor v1 (a
// DSSE envelope of the cosign/sign/v1 statement, the certificate, a log
// entry with its signed entry timestamp and inclusion proof, and
// optionally an RFC 3161 timestamp), both offline with sigstore-go's test
// sigstore, ca.VirtualSigstore (a Fulcio CA, a timestamp authority and a
// Rekor log key in memory):
//   - the real cosign CLI signs and uploads to a Rekor stand-in on loopback
//     that answers with entries VirtualSigstore's log key signs;
//   - the bundle is put together from VirtualSigstore's parts and pushed as
//     cosign does, an OCI 1.1 referrer of the image, to vary what it holds.

// witnesses say which proofs of time a test bundle carries.
type witnesses struct {
	timestamp, tlog bool
}

// writeVirtualRoot writes a trusted_root.json naming vs's CA, and its
// timestamp authority and log as asked.
func writeVirtualRoot(t *testing.T, vs *ca.VirtualSigstore, withTSA, withLog bool) string {
	t.Helper()
	var tsas []root.TimestampingAuthority
	if withTSA {
		tsas = vs.TimestampingAuthorities()
	}
	logs := map[string]*root.TransparencyLog{}
	if withLog {
		for id, l := range vs.RekorLogs() {
			// VirtualSigstore keeps the hex of the log ID where the trusted
			// root format wants its bytes.
			raw, err := hex.DecodeString(id)
			if err != nil {
				t.Fatal(err)
			}
			c := *l
			c.ID = raw
			logs[id] = &c
		}
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, tsas, logs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// signVirtual signs img keyless as subject, with the witnesses asked, and
// returns the sigstore bundle (v0.3) cosign would push.
func signVirtual(t *testing.T, vs *ca.VirtualSigstore, img ref.Ref, subject string, w witnesses) []byte {
	t.Helper()
	d := digest.Digest(img.Digest)
	statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":%q,"digest":{%q:%q}}],"predicateType":%q,"predicate":{}}`,
		img.Registry+"/"+img.Repository, d.Algorithm().String(), d.Encoded(), signPredicate)
	// The log's integrated time must fall within the certificate's ten
	// minutes, as VirtualSigstore.Attest chooses it.
	ent, err := vs.AttestAtTime(subject, testIssuer, []byte(statement), time.Now().Add(5*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env := sc.(*bundle.Envelope).RawEnvelope()
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
	}
	if w.timestamp {
		tss, _ := ent.Timestamps()
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tss[0]}},
		}
	}
	if w.tlog {
		entries, _ := ent.TlogEntries()
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{logEntry(t, vs, entries[0])}
	}
	pb := &protobundle.Bundle{
		MediaType:            "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	raw, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// logEntry is e as a bundle carries it, with the kind and version of its
// body and the signed entry timestamp (the inclusion promise) of the log,
// which VirtualSigstore keeps out of the proto.
func logEntry(t *testing.T, vs *ca.VirtualSigstore, e *tlog.Entry) *protorekor.TransparencyLogEntry {
	t.Helper()
	tle, ok := proto.Clone(e.TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	if !ok {
		t.Fatal("log entry is no TransparencyLogEntry")
	}
	var kv struct{ Kind, APIVersion string }
	if err := json.Unmarshal(tle.CanonicalizedBody, &kv); err != nil {
		t.Fatal(err)
	}
	tle.KindVersion = &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion}
	set, err := vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          hex.EncodeToString(tle.LogId.KeyId),
	})
	if err != nil {
		t.Fatal(err)
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle
}

// pushBundle pushes b as cosign v3 does: an OCI 1.1 referrer of img with
// the bundle as its one layer.
func pushBundle(t *testing.T, rc *regclient.RegClient, img ref.Ref, b []byte) {
	t.Helper()
	subject, err := rc.ManifestHead(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	layer := descriptor.Descriptor{MediaType: bundleType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	empty := descriptor.Descriptor{MediaType: mediatype.OCI1Empty, Digest: descriptor.EmptyDigest, Size: int64(len(descriptor.EmptyData))}
	for blob, desc := range map[string]descriptor.Descriptor{string(b): layer, string(descriptor.EmptyData): empty} {
		if _, err := rc.BlobPut(t.Context(), img, desc, bytes.NewReader([]byte(blob))); err != nil {
			t.Fatal(err)
		}
	}
	sd := subject.GetDescriptor()
	putReferrer(t, rc, img, v1.Manifest{
		Versioned:    v1.ManifestSchemaVersion,
		MediaType:    mediatype.OCI1Manifest,
		ArtifactType: bundleType,
		Config:       empty,
		Layers:       []descriptor.Descriptor{layer},
		Subject:      &descriptor.Descriptor{MediaType: sd.MediaType, Digest: sd.Digest, Size: sd.Size},
		Annotations:  map[string]string{predicateAnnotation: signPredicate},
	})
}

// A keyless signature must carry an entry of the transparency log the
// trusted root names, as cosign verify requires (issue 22, item 17),
// unless the log is explicitly not required; the log's time witnesses the
// short-lived certificate as a timestamp authority's does.
func TestVerifyKeylessTransparencyLog(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	full := writeVirtualRoot(t, vs, true, true)
	identity := []Identity{{Issuer: testIssuer, Subject: testSubject}}
	by := "identity " + testSubject + " (issuer " + testIssuer + ")"
	const none = "1 signature(s) found, none valid: "
	tests := []struct {
		name   string
		root   string
		noTlog bool
		signer *ca.VirtualSigstore
		w      witnesses
		status Status
		by     string
		reason string
	}{
		{name: "a timestamp and a log entry verify", root: full, signer: vs, w: witnesses{timestamp: true, tlog: true}, status: Verified, by: by},
		{name: "a log entry alone verifies, as cosign sign writes it with Rekor v1 and no timestamp authority",
			root: full, signer: vs, w: witnesses{tlog: true}, status: Verified, by: by},
		{name: "a timestamp without a log entry is refused when the trusted root names a log",
			root: full, signer: vs, w: witnesses{timestamp: true}, status: Invalid,
			reason: none + "keyless signature with no transparency log entry: the trusted root names a log, and its entry is required (as cosign verify does)"},
		{name: "a timestamp without a log entry verifies when the log is not required",
			root: full, noTlog: true, signer: vs, w: witnesses{timestamp: true}, status: Verified, by: by},
		{name: "a log entry alone is refused when the log is not required: only a timestamp authority witnesses then",
			root: full, noTlog: true, signer: vs, w: witnesses{tlog: true}, status: Invalid},
		{name: "an entry of a log the trusted root does not name is refused",
			root: writeVirtualRoot(t, other, false, true), signer: vs, w: witnesses{tlog: true}, status: Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := startRegistry(t)
			rc := client(reg)
			img := pushImage(t, reg, "team/app", "v1")
			pushBundle(t, rc, img, signVirtual(t, tt.signer, img, testSubject, tt.w))
			p, err := LoadPolicy(Config{TrustedRootFile: tt.root, Identities: identity, WithoutTransparencyLog: tt.noTlog})
			if err != nil {
				t.Fatalf("LoadPolicy: %v", err)
			}
			got, err := p.Verify(t.Context(), rc, img)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.reason == "" && tt.status == Invalid {
				// sigstore-go's own words; only that it is refused matters.
				got.Reason = ""
			}
			want := Verdict{Status: tt.status, By: tt.by, Reason: tt.reason, Signatures: 1}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

// A trusted root naming no transparency log cannot require a log entry:
// the policy refuses to load unless the log is explicitly not required.
func TestLoadPolicyTrustedRootWithoutLog(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	identity := []Identity{{Issuer: testIssuer, Subject: testSubject}}
	tsaOnly := writeVirtualRoot(t, vs, true, false)
	_, err = LoadPolicy(Config{TrustedRootFile: tsaOnly, Identities: identity})
	if !errors.Is(err, ErrNoTransparencyLog) || !strings.Contains(err.Error(), tsaOnly) {
		t.Errorf("LoadPolicy(root without log) = %v, want ErrNoTransparencyLog naming %s", err, tsaOnly)
	}
	if _, err := LoadPolicy(Config{TrustedRootFile: tsaOnly, Identities: identity, WithoutTransparencyLog: true}); err != nil {
		t.Errorf("LoadPolicy(root without log, log not required) = %v, want nil", err)
	}
	logOnly := writeVirtualRoot(t, vs, false, true)
	_, err = LoadPolicy(Config{TrustedRootFile: logOnly, Identities: identity, WithoutTransparencyLog: true})
	if err == nil || !strings.Contains(err.Error(), "no timestamp authorities") {
		t.Errorf("LoadPolicy(root without timestamp authority, log not required) = %v, want an error", err)
	}
}

// startRekor is a Rekor v1 log on loopback, the one request `cosign sign`
// makes of it: POST /api/v1/log/entries with a proposed entry, answered
// with the canonical entry, its integrated time, the signed entry timestamp
// and an inclusion proof, made with vs's log key as Rekor makes them.
func startRekor(t *testing.T, vs *ca.VirtualSigstore) string {
	t.Helper()
	logID, err := vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/log/entries" {
			http.Error(w, "not the Rekor v1 create entry call", http.StatusNotFound)
			return
		}
		pe, err := models.UnmarshalProposedEntry(io.LimitReader(r.Body, 1<<20), runtime.JSONConsumer())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		entry, err := types.CreateVersionedEntry(pe)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body, err := types.CanonicalizeEntry(r.Context(), entry)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		anon, err := rekorEntry(vs, logID, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sum := sha256.Sum256(body)
		uuid := hex.EncodeToString(sum[:])
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", uuid)
		w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]models.LogEntryAnon{uuid: anon})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// rekorEntry is Rekor's answer for a canonical entry body.
func rekorEntry(vs *ca.VirtualSigstore, logID string, body []byte) (models.LogEntryAnon, error) {
	integrated, index := time.Now().Unix(), int64(0)
	b64 := base64.StdEncoding.EncodeToString(body)
	set, err := vs.RekorSignPayload(tlog.RekorPayload{Body: b64, IntegratedTime: integrated, LogIndex: index, LogID: logID})
	if err != nil {
		return models.LogEntryAnon{}, err
	}
	proof, err := vs.GetInclusionProof(body)
	if err != nil {
		return models.LogEntryAnon{}, err
	}
	return models.LogEntryAnon{
		Body: b64, IntegratedTime: &integrated, LogID: &logID, LogIndex: &index,
		Verification: &models.LogEntryAnonVerification{InclusionProof: proof, SignedEntryTimestamp: strfmt.Base64(set)},
	}, nil
}

// The bundle the real cosign CLI writes with a Rekor entry (here from a
// Rekor stand-in on loopback) verifies under a trusted root that names the
// log, with or without a timestamp authority's timestamp; the same
// signature without the entry is refused.
func TestVerifyKeylessCosignWithRekor(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	rekorURL := startRekor(t, vs)
	fulcio := newTestCA(t, "test fulcio")
	tsa := startTSA(t)
	ci := newKeylessSigner(t, fulcio, testSubject, testIssuer)
	trustedRoot := writeRootWithLog(t, fulcio, tsa, vs)
	tests := []struct {
		name   string
		args   []string
		status Status
		reason string
	}{
		{"a Rekor entry alone", []string{"--tlog-upload=true", "--rekor-url", rekorURL}, Verified, ""},
		{"a Rekor entry and a timestamp", []string{"--tlog-upload=true", "--rekor-url", rekorURL, "--timestamp-server-url", tsa.url}, Verified, ""},
		{"a timestamp and no Rekor entry", []string{"--tlog-upload=false", "--timestamp-server-url", tsa.url}, Invalid,
			"1 signature(s) found, none valid: keyless signature with no transparency log entry: the trusted root names a log, and its entry is required (as cosign verify does)"},
	}
	p, err := LoadPolicy(Config{TrustedRootFile: trustedRoot, Identities: []Identity{{Issuer: testIssuer, Subject: testSubject}}})
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := startRegistry(t)
			img := pushImage(t, reg, "team/app", "v1")
			args := append([]string{"sign", "--yes", "--key", ci.key, "--certificate", ci.cert,
				"--allow-http-registry", "--use-signing-config=false"}, tt.args...)
			cosign(t, ci.dir, append(args, imageName(img))...)
			got, err := p.Verify(t.Context(), client(reg), img)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Verdict{Status: tt.status, Reason: tt.reason, Signatures: 1}
			if tt.status == Verified {
				want.By = "identity " + testSubject + " (issuer " + testIssuer + ")"
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

// writeRootWithLog writes a trusted_root.json trusting ca for signing
// certificates, tsa for timestamps and vs's Rekor log.
func writeRootWithLog(t *testing.T, fulcio testCA, tsa testTSA, vs *ca.VirtualSigstore) string {
	t.Helper()
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		c := *l
		c.ID = raw
		logs[id] = &c
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{
			Root: fulcio.cert, ValidityPeriodStart: fulcio.cert.NotBefore, URI: "https://fulcio.test",
		}},
		nil,
		[]root.TimestampingAuthority{&root.SigstoreTimestampingAuthority{
			Root: tsa.ca.cert, Leaf: tsa.cert, ValidityPeriodStart: tsa.ca.cert.NotBefore, URI: tsa.url,
		}},
		logs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
