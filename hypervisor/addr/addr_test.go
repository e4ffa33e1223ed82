package addr

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestParseMAC(t *testing.T) {
	good := map[string]MAC{
		"02:00:00:00:00:01": {0x02, 0, 0, 0, 0, 1},
		"AA-bb-CC-dd-EE-ff": {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
		"ff:ff:ff:ff:ff:ff": Broadcast,
	}
	for s, want := range good {
		got, err := ParseMAC(s)
		if err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "02:00:00:00:00", "02:00:00:00:00:0g", "02:00-00:00:00:01", "0200.0000.0001",
		"02:00:00:00:00:01:02", "02.00.00.00.00.01", " 2:00:00:00:00:01"} {
		if _, err := ParseMAC(s); err == nil {
			t.Errorf("ParseMAC(%q) succeeded, want error", s)
		}
	}
}

func TestMACStringRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		m := MACFromUint64(r.Uint64())
		got, err := ParseMAC(m.String())
		if err != nil || got != m {
			t.Fatalf("round trip %v: %v, %v", m, got, err)
		}
		if MACFromUint64(m.Uint64()) != m {
			t.Fatalf("uint64 round trip %v", m)
		}
		hw := m.HardwareAddr()
		if hw.String() != m.String() {
			t.Fatalf("HardwareAddr %v != %v", hw, m)
		}
		back, err := MACFromHardwareAddr(hw)
		if err != nil || back != m {
			t.Fatalf("MACFromHardwareAddr: %v %v", back, err)
		}
	}
	if _, err := MACFromHardwareAddr(make([]byte, 8)); err == nil {
		t.Error("8-octet hardware address accepted")
	}
	var m MAC
	if err := m.UnmarshalText([]byte("nope")); err == nil {
		t.Error("UnmarshalText accepted garbage")
	}
	if err := m.UnmarshalText([]byte("02:00:00:00:00:07")); err != nil || m != (MAC{2, 0, 0, 0, 0, 7}) {
		t.Errorf("UnmarshalText: %v %v", m, err)
	}
}

func TestMACBits(t *testing.T) {
	cases := []struct {
		mac                            string
		multicast, broadcast, local, z bool
	}{
		{"00:00:00:00:00:00", false, false, false, true},
		{"00:00:00:00:00:01", false, false, false, false},
		{"02:00:00:00:00:01", false, false, true, false},
		{"01:80:c2:00:00:0e", true, false, false, false},
		{"33:33:00:00:00:01", true, false, true, false},
		{"ff:ff:ff:ff:ff:ff", true, true, true, false},
	}
	for _, c := range cases {
		m := MustParseMAC(c.mac)
		if m.IsMulticast() != c.multicast || m.IsUnicast() == c.multicast || m.IsBroadcast() != c.broadcast ||
			m.IsLocal() != c.local || m.IsZero() != c.z {
			t.Errorf("%s: bits wrong: multicast=%v broadcast=%v local=%v zero=%v", c.mac,
				m.IsMulticast(), m.IsBroadcast(), m.IsLocal(), m.IsZero())
		}
	}
}

func TestValidTenantIDs(t *testing.T) {
	n := 0
	for i := 0; i <= 0xffff; i++ {
		id := TenantID(i)
		if !IsValidTenantID(id) {
			continue
		}
		n++
		if id < FirstTenantID || id > LastTenantID {
			t.Errorf("valid ID %v outside [First, Last]", id)
		}
		m := FabricMAC(id, 1)
		if m.IsMulticast() || !m.IsLocal() {
			t.Errorf("tenant %v: fabric MAC %v multicast=%v local=%v", id, m, m.IsMulticast(), m.IsLocal())
		}
	}
	if n != NumTenantIDs {
		t.Errorf("%d valid tenant IDs, NumTenantIDs = %d", n, NumTenantIDs)
	}
	for _, id := range []TenantID{NoTenant, 0x0100, 0x0300, 0x0000, 0xff00, 0xffff, 0x01ff} {
		if IsValidTenantID(id) {
			t.Errorf("IsValidTenantID(%#04x) = true", uint16(id))
		}
	}
	if !IsValidTenantID(FirstTenantID) || !IsValidTenantID(LastTenantID) {
		t.Error("First/Last not valid")
	}
	if s := TenantID(0x0201).String(); s != "513(02:01)" {
		t.Errorf("String = %q", s)
	}
}

// Property: FabricMAC/Split round trip; valid fabric MACs are unicast; the
// tenant mask selects exactly one tenant.
func TestFabricProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		id := TenantID(r.UintN(1 << 16))
		h := HostIndex(r.Uint32())
		m := FabricMAC(id, h)
		gid, gh := Split(m)
		if gid != id || gh != h {
			t.Fatalf("Split(FabricMAC(%v,%d)) = %v,%d", id, h, gid, gh)
		}
		tid, ok := TenantOf(m)
		if ok != IsValidTenantID(id) || tid != id {
			t.Fatalf("TenantOf(%v) = %v,%v", m, tid, ok)
		}
		if ok && m.IsMulticast() {
			t.Fatalf("valid fabric MAC %v is multicast", m)
		}
		if IsFabricMAC(m) != (ok && h != NoHost) {
			t.Fatalf("IsFabricMAC(%v) wrong", m)
		}
		val, mask := TenantMatch(id)
		if !m.Matches(val, mask) {
			t.Fatalf("%v does not match its own tenant %v/%v", m, val, mask)
		}
		other := TenantID(r.UintN(1 << 16))
		om := FabricMAC(other, HostIndex(r.Uint32()))
		if om.Matches(val, mask) != (other == id) {
			t.Fatalf("%v matches tenant %v mask: %v (other=%v)", om, id, om.Matches(val, mask), other)
		}
	}
	if v, m := TenantMatch(0x0a0b); v != MustParseMAC("0a:0b:00:00:00:00") || m != MustParseMAC("ff:ff:00:00:00:00") {
		t.Errorf("TenantMatch = %v/%v", v, m)
	}
	if got := FabricMAC(0x0203, 0x04050607); got != MustParseMAC("02:03:04:05:06:07") {
		t.Errorf("FabricMAC layout = %v", got)
	}
}

func TestGroupMark(t *testing.T) {
	g := GroupMAC(0x0201, 5)
	if g != MustParseMAC("02:01:80:00:00:05") || !IsGroupMarked(g) || IsGroupMarked(FabricMAC(0x0201, 5)) {
		t.Fatalf("GroupMAC = %v", g)
	}
	if !IsFabricMAC(g) || g.IsMulticast() {
		t.Errorf("group-marked MAC %v: fabric=%v multicast=%v", g, IsFabricMAC(g), g.IsMulticast())
	}
	if IsFabricMAC(GroupMAC(0x0201, 0)) {
		t.Error("group mark on host 0 is a fabric MAC")
	}
	// HostMask matches a host's MAC with and without the mark, and nothing else.
	plain := FabricMAC(0x0201, 5)
	if !g.Matches(plain, HostMask) || !plain.Matches(plain, HostMask) || FabricMAC(0x0201, 6).Matches(plain, HostMask) ||
		FabricMAC(0x0202, 5).Matches(plain, HostMask) {
		t.Error("HostMask matching wrong")
	}
	if MaxHostIndex&GroupMark != 0 || MaxHostIndex+1 != GroupMark {
		t.Error("MaxHostIndex/GroupMark overlap")
	}
}

func TestTunnelKey(t *testing.T) {
	if k := TunnelKey(0x0201); k != 0x0201 {
		t.Errorf("TunnelKey = %#x", k)
	}
	if id, ok := TenantFromTunnelKey(0x0201); !ok || id != 0x0201 {
		t.Errorf("TenantFromTunnelKey(0x201) = %v %v", id, ok)
	}
	for _, k := range []uint64{0, 0x0100, 0x10201} {
		if _, ok := TenantFromTunnelKey(k); ok {
			t.Errorf("TenantFromTunnelKey(%#x) ok", k)
		}
	}
}

func TestLinkLocal(t *testing.T) {
	for s, want := range map[string]bool{
		"01:80:c2:00:00:00": true, "01:80:c2:00:00:0e": true, "01:80:c2:00:00:0f": true,
		"01:80:c2:00:00:10": false, "01:00:5e:00:00:01": false, "ff:ff:ff:ff:ff:ff": false,
	} {
		if IsLinkLocalGroup(MustParseMAC(s)) != want {
			t.Errorf("IsLinkLocalGroup(%s) != %v", s, want)
		}
	}
}

func TestTenantAllocator(t *testing.T) {
	var a TenantAllocator
	first, err := a.Allocate()
	if err != nil || first != FirstTenantID {
		t.Fatalf("first Allocate = %v, %v", first, err)
	}
	second, _ := a.Allocate()
	if second != FirstTenantID+1 {
		t.Fatalf("second = %v", second)
	}
	if err := a.Reserve(second); err == nil {
		t.Error("Reserve of allocated ID succeeded")
	}
	if err := a.Reserve(0x0100); err == nil {
		t.Error("Reserve of invalid ID succeeded")
	}
	a.Release(first)
	if got, _ := a.Allocate(); got != first {
		t.Errorf("after release got %v, want lowest free %v", got, first)
	}
	// Fill everything; every ID handed out must be valid and distinct.
	seen := map[TenantID]bool{first: true, second: true}
	for a.Len() < NumTenantIDs {
		id, err := a.Allocate()
		if err != nil {
			t.Fatalf("Allocate after %d: %v", a.Len(), err)
		}
		if !IsValidTenantID(id) || seen[id] {
			t.Fatalf("Allocate gave %v (valid=%v, dup=%v)", id, IsValidTenantID(id), seen[id])
		}
		seen[id] = true
	}
	if _, err := a.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full allocator: %v, want ErrExhausted", err)
	}
	a.Release(0x0a10)
	if got, err := a.Allocate(); err != nil || got != 0x0a10 {
		t.Errorf("after freeing 0x0a10 got %v, %v", got, err)
	}
	a.Release(0x0100) // invalid and free: no-op
	if a.Len() != NumTenantIDs {
		t.Errorf("Len = %d", a.Len())
	}
}

func TestHostAllocator(t *testing.T) {
	var a HostAllocator
	for want := HostIndex(1); want <= 5; want++ {
		if got, err := a.Allocate(); err != nil || got != want {
			t.Fatalf("Allocate = %d, %v; want %d", got, err, want)
		}
	}
	a.Release(2)
	a.Release(4)
	if got, _ := a.Allocate(); got != 2 {
		t.Errorf("got %d, want 2", got)
	}
	if got, _ := a.Allocate(); got != 4 {
		t.Errorf("got %d, want 4", got)
	}
	if got, _ := a.Allocate(); got != 6 {
		t.Errorf("got %d, want 6", got)
	}
	if err := a.Reserve(NoHost); err == nil {
		t.Error("Reserve(0) succeeded")
	}
	if err := a.Reserve(MaxHostIndex + 1); err == nil {
		t.Error("Reserve of a group-marked index succeeded")
	}
	if err := a.Reserve(3); err == nil {
		t.Error("Reserve of used index succeeded")
	}
	if err := a.Reserve(100); err != nil {
		t.Error(err)
	}
	if a.Len() != 7 || !a.InUse(100) || a.InUse(7) {
		t.Errorf("Len=%d InUse(100)=%v InUse(7)=%v", a.Len(), a.InUse(100), a.InUse(7))
	}
	// Near the top of the space.
	var b HostAllocator
	if err := b.Reserve(MaxHostIndex); err != nil {
		t.Fatal(err)
	}
	b.low = MaxHostIndex - 1
	if got, err := b.Allocate(); err != nil || got != MaxHostIndex-1 {
		t.Fatalf("got %d %v", got, err)
	}
	if _, err := b.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
}

func testMap(t testing.TB) *TenantMap {
	m, err := NewTenantMap(0x0201, map[MAC]HostIndex{
		MustParseMAC("00:00:00:00:00:01"): 1,
		MustParseMAC("00:00:00:00:00:02"): 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func frame(dst, src string) []byte {
	f := make([]byte, 60)
	d, s := MustParseMAC(dst), MustParseMAC(src)
	copy(f[0:6], d[:])
	copy(f[6:12], s[:])
	f[12], f[13] = 0x08, 0x06
	return f
}

func TestNewTenantMapErrors(t *testing.T) {
	cases := map[string]struct {
		id    TenantID
		hosts map[MAC]HostIndex
	}{
		"invalid id":  {0x0100, nil},
		"multicast":   {0x0201, map[MAC]HostIndex{Broadcast: 1}},
		"zero mac":    {0x0201, map[MAC]HostIndex{{}: 1}},
		"zero index":  {0x0201, map[MAC]HostIndex{{0, 0, 0, 0, 0, 1}: 0}},
		"dup indices": {0x0201, map[MAC]HostIndex{{0, 0, 0, 0, 0, 1}: 3, {0, 0, 0, 0, 0, 2}: 3}},
		"group index": {0x0201, map[MAC]HostIndex{{0, 0, 0, 0, 0, 1}: GroupMark | 1}},
	}
	for name, c := range cases {
		if _, err := NewTenantMap(c.id, c.hosts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestIngressEgress(t *testing.T) {
	m := testMap(t)
	if m.ID() != 0x0201 || m.Len() != 2 {
		t.Fatalf("ID/Len = %v/%d", m.ID(), m.Len())
	}
	// Unicast: both MACs rewritten, payload untouched, and back.
	f := frame("00:00:00:00:00:02", "00:00:00:00:00:01")
	orig := append([]byte(nil), f...)
	if err := m.Ingress(f); err != nil {
		t.Fatal(err)
	}
	if MAC(f[0:6]) != MustParseMAC("02:01:00:00:00:02") || MAC(f[6:12]) != MustParseMAC("02:01:00:00:00:01") {
		t.Fatalf("ingress gave dst %v src %v", MAC(f[0:6]), MAC(f[6:12]))
	}
	if string(f[12:]) != string(orig[12:]) {
		t.Fatal("ingress touched the payload")
	}
	if id, ok := TenantOfFrame(f); !ok || id != 0x0201 {
		t.Fatalf("TenantOfFrame = %v %v", id, ok)
	}
	if err := m.Egress(f); err != nil {
		t.Fatal(err)
	}
	if string(f) != string(orig) {
		t.Fatal("egress did not restore the frame")
	}
	// Broadcast: destination unchanged, source rewritten; tenant from source.
	b := frame("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:02")
	if err := m.Ingress(b); err != nil {
		t.Fatal(err)
	}
	if !MAC(b[0:6]).IsBroadcast() || MAC(b[6:12]) != FabricMAC(0x0201, 2) {
		t.Fatalf("broadcast ingress gave %v %v", MAC(b[0:6]), MAC(b[6:12]))
	}
	if err := m.Egress(b); err != nil || MAC(b[6:12]) != MustParseMAC("00:00:00:00:00:02") {
		t.Fatalf("broadcast egress: %v %v", err, MAC(b[6:12]))
	}
	// A per-host copy of a broadcast (group-marked destination) leaves as broadcast.
	g := frame("02:01:80:00:00:01", "02:01:00:00:00:02")
	if err := m.Egress(g); err != nil || !MAC(g[0:6]).IsBroadcast() || MAC(g[6:12]) != MustParseMAC("00:00:00:00:00:02") {
		t.Fatalf("group-marked egress: %v dst %v src %v", err, MAC(g[0:6]), MAC(g[6:12]))
	}
	if _, ok := m.ToOwn(GroupMAC(0x0201, 9)); ok {
		t.Error("ToOwn of group mark for unknown host ok")
	}
}

func TestIngressEgressErrors(t *testing.T) {
	m := testMap(t)
	cases := []struct {
		name    string
		f       []byte
		egress  bool
		wantErr error
	}{
		{"short ingress", make([]byte, 11), false, ErrShortFrame},
		{"short egress", make([]byte, 5), true, ErrShortFrame},
		{"unknown source", frame("00:00:00:00:00:02", "00:00:00:00:00:09"), false, ErrUnknownHost},
		{"group source", frame("00:00:00:00:00:02", "01:00:00:00:00:01"), false, ErrUnknownHost},
		// Unknown unicast destination must not pass: it could alias a fabric MAC.
		{"unknown dest aliasing", frame("02:02:00:00:00:01", "00:00:00:00:00:01"), false, ErrUnknownHost},
		{"foreign source", frame("02:01:00:00:00:01", "02:02:00:00:00:01"), true, ErrForeignTenant},
		{"foreign dest", frame("02:02:00:00:00:01", "02:01:00:00:00:01"), true, ErrForeignTenant},
		{"multicast source egress", frame("ff:ff:ff:ff:ff:ff", "03:01:00:00:00:01"), true, ErrForeignTenant},
		{"unknown index src", frame("ff:ff:ff:ff:ff:ff", "02:01:00:00:00:09"), true, ErrUnknownHost},
		{"unknown index dst", frame("02:01:00:00:00:09", "02:01:00:00:00:01"), true, ErrUnknownHost},
	}
	for _, c := range cases {
		orig := append([]byte(nil), c.f...)
		var err error
		if c.egress {
			err = m.Egress(c.f)
		} else {
			err = m.Ingress(c.f)
		}
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.wantErr)
		}
		if string(orig) != string(c.f) {
			t.Errorf("%s: frame modified on error", c.name)
		}
	}
	if _, ok := TenantOfFrame(make([]byte, 3)); ok {
		t.Error("TenantOfFrame on short frame ok")
	}
}

func BenchmarkFabricMAC(b *testing.B) {
	var sink MAC
	for i := 0; b.Loop(); i++ {
		sink = FabricMAC(0x0201, HostIndex(i))
	}
	_ = sink
}

func BenchmarkIngressEgress(b *testing.B) {
	m := testMap(b)
	f := frame("00:00:00:00:00:02", "00:00:00:00:00:01")
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Ingress(f); err != nil {
			b.Fatal(err)
		}
		if err := m.Egress(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTenantOfFrame(b *testing.B) {
	f := frame("ff:ff:ff:ff:ff:ff", "02:01:00:00:00:01")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := TenantOfFrame(f); !ok {
			b.Fatal("no tenant")
		}
	}
}

func BenchmarkMACString(b *testing.B) {
	m := MustParseMAC("02:01:00:00:00:01")
	b.ReportAllocs()
	for b.Loop() {
		_ = m.String()
	}
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"02:00:00:00:00:01", "AA-bb-CC-dd-EE-ff", "", "zz:00:00:00:00:00", "02:00-00:00:00:01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			if m != (MAC{}) {
				t.Fatalf("ParseMAC(%q) returned %v with error", s, m)
			}
			return
		}
		back, err := ParseMAC(m.String())
		if err != nil || back != m {
			t.Fatalf("round trip of %q: %v %v", s, back, err)
		}
		if len(s) != 17 {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
	})
}
