package lab

import (
	"reflect"
	"testing"
)

func TestDirectRelayArgs(t *testing.T) {
	s := &Spec{Sites: []SiteSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		WAN: WANSpec{DelayMS: 10, Pairs: []PairSpec{{A: "a", B: "c", DelayMS: 50, RateMbit: 100}, {A: "b", B: "c", DelayMS: 2.5}}}}
	if got := (&builder{s: s}).directRelayArgs(); got != nil {
		t.Fatalf("without DirectWAN: %q", got)
	}
	got := (&builder{s: s, opt: Options{DirectWAN: true}}).directRelayArgs()
	want := []string{"--pair", "d-s1,d-s3=50", "--rate", "d-s1,d-s3=100", "--pair", "d-s2,d-s3=2.5", "d-s1", "d-s2", "d-s3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if DirectPeer(12) != "d-s12" || len(DirectPort) > 15 {
		t.Fatal(DirectPeer(12), DirectPort)
	}
}
