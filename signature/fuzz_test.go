package signature

import (
	"crypto/elliptic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/ref"
)

// FuzzCheckPayloads feeds what a signer controls (a simple-signing
// payload with its signature annotation, and a DSSE statement) to the
// checks that read them: they must not panic, and nothing made up may
// verify under a key nobody signed with.
func FuzzCheckPayloads(f *testing.F) {
	d := digest.Digest("sha256:" + "6beae8cafe3d4233a662ef5528d0c84521623c5e53ffa2a5b555bddbbb3c1a51")
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/team/app"},"image":{"docker-manifest-digest":"`+d.String()+`"},"type":"cosign container image signature"},"optional":null}`),
		"MEUCIQDq1ABXhE8Q5T0Q1aQmTXTPrfw3v5a5xoW0tXuQK5ts3wIgXkS3AeOC2lmQ8fiOa0bW4hN3E5S0m9pS4Gq1Wl8r2ZQ=",
		[]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"`+d.Encoded()+`"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":""}}}`), "", []byte(`{"subject":[{"digest":{}}]}`))
	f.Add([]byte(`null`), "!!", []byte(`[]`))

	p := loadPolicy(f, writePublicKey(f, mustECDSA(f, elliptic.P256()).Public()))
	img, err := ref.New("127.0.0.1:5000/team/app@" + d.String())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, sig string, statement []byte) {
		if got := p.verifySimpleSigning(payload, map[string]string{signatureAnnotation: sig}, img, d); got.by != "" {
			t.Errorf("made-up payload verified: %+v", got)
		}
		_, _ = checkStatement(inTotoPayloadType, statement, d)
	})
}
