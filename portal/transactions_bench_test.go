package portal

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDecodeRequestPublish: decoding a Publish request that carries the
// seed's ProfileAccount envelope as its entry and as its proof.
func BenchmarkDecodeRequestPublish(b *testing.B) {
	env, err := os.ReadFile(filepath.Join("mesh", "testdata", "EnvelopedProfileAccount.json"))
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"PublishRequest":{"Entry":{"ProfileAccount":` + string(env) +
		`},"AccountID":"alice@example.com","Proof":{"AccountProof":` + string(env) + `}}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}
