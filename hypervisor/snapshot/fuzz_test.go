package snapshot

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, and a document it accepts encodes and
// decodes again to the same encoding (every flow of it decodes).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"snap-20261122T053000Z-00000000","switches":[]}`))
	f.Add([]byte(`{"version":1,"switches":[{"dpid":"00000000000000a1","bridge":{"name":"b"},"flows":[{"match":"AAEADIAAAAQAAAALAAAAAA==","instructions":"AAQAGAAAAAD//wAQAAAjIAAO//gBAAAA"}]}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		e1, err := Encode(s)
		if err != nil {
			t.Fatalf("accepted document does not encode: %v", err)
		}
		s2, err := Decode(e1)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		e2, _ := Encode(s2)
		if !bytes.Equal(e1, e2) {
			t.Fatalf("encoding not stable:\n%s\n%s", e1, e2)
		}
	})
}
