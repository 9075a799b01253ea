package plainmesh

import (
	"bytes"
	"math/rand"
	"net/netip"
	"testing"
)

var tag = Tag{1, 2, 3, 4, 5, 6, 7, 8}

func packet(n int) []byte {
	p := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(p)
	return p
}

func datagrams(t *testing.T, p []byte, segment int, seq uint32) [][]byte {
	t.Helper()
	out := make([]byte, MaxSegments*segment)
	n, err := Split(out, p, segment, seq, &tag)
	if err != nil {
		t.Fatal(err)
	}
	var ds [][]byte
	for off := 0; off < n; off += segment {
		ds = append(ds, out[off:min(off+segment, n)])
	}
	return ds
}

func TestSuperPacketsCrossWholeInOrder(t *testing.T) {
	r := NewReassembler(&tag)
	for i, size := range []int{1, 100, 1455, 1456, 1457, 30000, MaxPacket} {
		p := packet(size)
		ds := datagrams(t, p, 1472, uint32(i))
		if len(ds) != Segments(size, 1472) {
			t.Fatalf("%d bytes: %d datagrams, want %d", size, len(ds), Segments(size, 1472))
		}
		for j, d := range ds {
			got := r.Add(d)
			if (got != nil) != (j == len(ds)-1) {
				t.Fatalf("%d bytes: datagram %d of %d completed=%v", size, j, len(ds), got != nil)
			}
			if got != nil && !bytes.Equal(bytes.Join(got, nil), p) {
				t.Fatalf("%d bytes: rebuilt packet differs", size)
			}
		}
	}
	if r.Dropped.Load() != 0 || r.Foreign.Load() != 0 {
		t.Fatalf("dropped %d, foreign %d", r.Dropped.Load(), r.Foreign.Load())
	}
}

func TestALostOrReorderedDatagramDropsItsPacketOnly(t *testing.T) {
	r := NewReassembler(&tag)
	a, b := datagrams(t, packet(5000), 1472, 1), datagrams(t, packet(6000), 1472, 2)
	for _, d := range [][]byte{a[0], a[2], a[1], a[3]} { // reordered
		if r.Add(d) != nil {
			t.Fatal("a reordered packet completed")
		}
	}
	for _, d := range b[:len(b)-1] {
		r.Add(d)
	}
	if got := r.Add(b[len(b)-1]); !bytes.Equal(bytes.Join(got, nil), packet(6000)) {
		t.Fatal("the next packet did not come through whole")
	}
	r.Add(a[0]) // a lost tail, then a new packet
	c := datagrams(t, packet(3000), 1472, 3)
	var got []byte
	for _, d := range c {
		got = bytes.Join(r.Add(d), nil)
	}
	if !bytes.Equal(got, packet(3000)) || r.Dropped.Load() != 2 {
		t.Fatalf("got %d bytes, dropped %d (want 2)", len(got), r.Dropped.Load())
	}
}

func TestAPacketAcrossTwoReadsIsHeldBeforeTheBufferIsReused(t *testing.T) {
	r := NewReassembler(&tag)
	ds := datagrams(t, packet(10000), 1472, 7)
	read := make([]byte, 0, 1472*len(ds)) // one receive buffer, as the UDP reads use
	first := len(ds) / 2
	for _, d := range ds[:first] {
		read = append(read, d...)
	}
	for off := 0; off < len(read); off += 1472 {
		if r.Add(read[off:min(off+1472, len(read))]) != nil {
			t.Fatal("completed early")
		}
	}
	r.Hold()
	r.Hold() // nothing new: a no-op
	read = read[:0]
	for _, d := range ds[first:] { // the next read overwrites the buffer
		read = append(read, d...)
	}
	var got [][]byte
	for off := 0; off < len(read); off += 1472 {
		got = r.Add(read[off:min(off+1472, len(read))])
	}
	if !bytes.Equal(bytes.Join(got, nil), packet(10000)) {
		t.Fatal("a packet held across reads came out different")
	}
	if len(got) != 1+len(ds)-first {
		t.Errorf("%d pieces: want the held start and one per datagram of the second read (%d)", len(got), 1+len(ds)-first)
	}
	if r.Dropped.Load() != 0 {
		t.Errorf("dropped %d", r.Dropped.Load())
	}
}

func TestDatagramsWithoutTheJobsTagAreForeign(t *testing.T) {
	r := NewReassembler(&tag)
	other := Tag{9}
	out := make([]byte, 4096)
	n, _ := Split(out, packet(100), 1472, 1, &other)
	if r.Add(out[:n]) != nil || r.Foreign.Load() != 1 {
		t.Fatal("a datagram with another tag was taken")
	}
	forged := append([]byte(nil), datagrams(t, packet(100), 1472, 1)[0]...)
	forged[13] = 0 // count 0
	if r.Add(forged) != nil || r.Add(forged[:HeaderLen]) != nil || r.Foreign.Load() != 3 {
		t.Fatalf("impossible datagrams were taken (foreign %d)", r.Foreign.Load())
	}
}

func TestVectorsRefuseWhatTheyCannotCarry(t *testing.T) {
	headers := make([]byte, MaxSegments*HeaderLen)
	if _, _, err := Vectors(nil, headers, packet(MaxPacket), 600, 1, &tag); err != ErrTooLarge {
		t.Fatalf("too many segments: %v", err)
	}
	if _, _, err := Vectors(nil, headers, packet(10), HeaderLen, 1, &tag); err != ErrBadSegment {
		t.Fatalf("no room for payload: %v", err)
	}
	if _, _, err := Vectors(nil, headers[:HeaderLen], packet(3000), 1472, 1, &tag); err != ErrTooLarge {
		t.Fatalf("no room for the headers: %v", err)
	}
}

func TestPeersByInnerDestinationAndOuterSource(t *testing.T) {
	var list []Peer
	for _, s := range []string{"node02=10.77.0.12:51820=10.250.0.2/32,10.244.1.0/24",
		"node03=10.77.0.13:40000=10.250.0.3/32,10.244.2.0/24"} {
		p, err := ParsePeer(s)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, p)
	}
	peers, err := NewPeers(list)
	if err != nil {
		t.Fatal(err)
	}
	v4 := make([]byte, 20)
	v4[0] = 0x45
	copy(v4[16:], []byte{10, 244, 2, 7})
	if peers.To(v4) != 1 {
		t.Fatal("10.244.2.7 is node03's")
	}
	copy(v4[16:], []byte{10, 244, 9, 7})
	if peers.To(v4) != -1 || peers.To([]byte{0x45}) != -1 {
		t.Fatal("no peer serves 10.244.9.7 or a truncated packet")
	}
	if peers.From(netip.MustParseAddrPort("10.77.0.12:51820")) != 0 ||
		peers.From(netip.MustParseAddrPort("[::ffff:10.77.0.13]:40000")) != 1 ||
		peers.From(netip.MustParseAddrPort("10.77.0.12:51821")) != -1 ||
		peers.From(netip.MustParseAddrPort("10.77.0.99:51820")) != -1 {
		t.Fatal("sources are the peers' endpoints exactly")
	}
	overlapping, _ := ParsePeer("node04=10.77.0.14:1=10.244.2.128/25")
	if _, err := NewPeers(append(list, overlapping)); err == nil {
		t.Fatal("overlapping ranges were taken")
	}
	for _, bad := range []string{"node02", "node02=10.77.0.12=10.0.0.0/8", "=10.77.0.12:1=10.0.0.0/8",
		"n=10.77.0.12:1=10.0.0.0/33"} {
		if _, err := ParsePeer(bad); err == nil {
			t.Fatalf("%q was taken", bad)
		}
	}
}

func TestVectorsSendWhatSplitWrites(t *testing.T) {
	for _, size := range []int{1, 1456, 1457, 40000, MaxPacket} {
		p := packet(size)
		out := make([]byte, MaxSegments*1472)
		n, err := Split(out, p, 1472, 9, &tag)
		if err != nil {
			t.Fatal(err)
		}
		iov, count, err := Vectors(nil, make([]byte, MaxSegments*HeaderLen), p, 1472, 9, &tag)
		if err != nil || count != Segments(size, 1472) || len(iov) != 2*count {
			t.Fatalf("%d bytes: %d datagrams, %d buffers, %v", size, count, len(iov), err)
		}
		if got := bytes.Join(iov, nil); !bytes.Equal(got, out[:n]) {
			t.Fatalf("%d bytes: the buffers differ from Split's datagrams", size)
		}
	}
}

// Split (the reference for Vectors) writes packet into out as datagrams of `segment` bytes each (the last may be shorter), each with
// its header, ready for one sendmsg with UDP_SEGMENT = segment; it returns the bytes of out used.
func Split(out, packet []byte, segment int, seq uint32, tag *Tag) (int, error) {
	if segment <= HeaderLen || segment > 65507 {
		return 0, ErrBadSegment
	}
	count := Segments(len(packet), segment)
	if count > MaxSegments || len(packet) > MaxPacket || len(packet) == 0 {
		return 0, ErrTooLarge
	}
	payload := segment - HeaderLen
	n := 0
	for i := 0; i < count; i++ {
		chunk := packet[i*payload : min((i+1)*payload, len(packet))]
		if n+HeaderLen+len(chunk) > len(out) {
			return 0, ErrTooLarge
		}
		Header{Seq: seq, Index: uint8(i), Count: uint8(count)}.put(out[n:], tag)
		n += HeaderLen + copy(out[n+HeaderLen:], chunk)
	}
	return n, nil
}
