package mesh

import "testing"

// BenchmarkParseEnvelope: parsing (not verifying) the seed's ProfileAccount
// envelope, as a portal does for an entry and for its AccountProof.
func BenchmarkParseEnvelope(b *testing.B) {
	raw := readTestdata(b, "EnvelopedProfileAccount.json")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEnvelope(raw); err != nil {
			b.Fatal(err)
		}
	}
}
