// Package plainmesh carries whole GSO super-packets (virtio_net_hdr + IP packet, as a TUN opened with
// IFF_VNET_HDR reads them) between hosts as runs of UDP datagrams, unencrypted: one UDP_SEGMENT send
// per super-packet, rebuilt from UDP_GRO on the far side. Every datagram starts with a header that carries
// the job's tag (datagrams without it are dropped), the super-packet's sequence number, and the
// datagram's place in it; a super-packet whose datagrams do not arrive complete and in order is dropped
// whole (TCP sends it again).
package plainmesh

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sync/atomic"
)

const (
	HeaderLen = 16
	TagLen    = 8
	// MaxSegments bounds the datagrams of one super-packet: the kernel's UDP_MAX_SEGMENTS is 64 on older
	// kernels; a 64 KiB super-packet at the smallest segment this package accepts fits.
	MaxSegments = 64
	// MaxPacket is the largest super-packet carried: a virtio_net_hdr and a 64 KiB IP packet.
	MaxPacket = 10 + 65535
)

var (
	ErrTooLarge   = errors.New("plainmesh: packet larger than the segments can carry")
	ErrBadSegment = errors.New("plainmesh: segment size out of range")
)

// Tag is the job's mark on every datagram (derived from the job's secret by the caller).
type Tag [TagLen]byte

// Header of one datagram: tag | seq (4) | index (1) | count (1) | reserved (2).
type Header struct {
	Seq   uint32
	Index uint8
	Count uint8
}

func (h Header) put(b []byte, tag *Tag) {
	copy(b[:TagLen], tag[:])
	binary.BigEndian.PutUint32(b[8:12], h.Seq)
	b[12], b[13], b[14], b[15] = h.Index, h.Count, 0, 0
}

// Parse reads a datagram's header; ok is false when the tag is not the job's or the fields are impossible.
func Parse(b []byte, tag *Tag) (h Header, ok bool) {
	if len(b) <= HeaderLen || subtle.ConstantTimeCompare(b[:TagLen], tag[:]) != 1 {
		return h, false
	}
	h = Header{Seq: binary.BigEndian.Uint32(b[8:12]), Index: b[12], Count: b[13]}
	return h, h.Count > 0 && h.Count <= MaxSegments && h.Index < h.Count
}

// Segments returns how many datagrams of `segment` bytes (header included) carry n bytes.
func Segments(n, segment int) int {
	payload := segment - HeaderLen
	return (n + payload - 1) / payload
}

// Reassembler rebuilds super-packets from one peer's datagrams, in the order they arrive. A packet's pieces
// stay where the datagrams were read (no copy) unless a read ends before the packet does: Hold copies them.
type Reassembler struct {
	tag   *Tag
	buf   []byte   // the held start of a packet begun in an earlier read
	parts [][]byte // the packet's pieces so far: slices of the datagrams, or buf[:held] first
	held  int
	n     int
	seq   uint32
	next  uint8 // index expected next; 0: no packet under way
	count uint8
	// Read by other goroutines (a status request) while Add runs.
	Dropped atomic.Uint64 // super-packets given up (a datagram lost, reordered or foreign)
	Foreign atomic.Uint64 // datagrams without the job's tag or with impossible fields
}

func NewReassembler(tag *Tag) *Reassembler {
	return &Reassembler{tag: tag, buf: make([]byte, MaxPacket), parts: make([][]byte, 0, MaxSegments)}
}

func (r *Reassembler) restart() {
	r.next, r.n, r.held, r.parts = 0, 0, 0, r.parts[:0]
}

// Add takes one datagram; when it ends a super-packet, Add returns the packet's pieces in order (slices of
// the datagrams passed in since the last Hold, and of the reassembler's own buffer), valid until the next
// call.
func (r *Reassembler) Add(d []byte) [][]byte {
	h, ok := Parse(d, r.tag)
	if !ok {
		r.Foreign.Add(1)
		return nil
	}
	body := d[HeaderLen:]
	if h.Index == 0 {
		if r.next != 0 {
			r.Dropped.Add(1) // the previous one never completed
		}
		r.restart()
		r.seq, r.count = h.Seq, h.Count
	} else if r.next == 0 || h.Seq != r.seq || h.Index != r.next || h.Count != r.count {
		if r.next != 0 {
			r.Dropped.Add(1)
		}
		r.restart()
		return nil
	}
	if r.n+len(body) > len(r.buf) {
		r.Dropped.Add(1)
		r.restart()
		return nil
	}
	r.parts = append(r.parts, body)
	r.n += len(body)
	r.next = h.Index + 1
	if r.next == r.count {
		parts := r.parts
		r.restart()
		return parts
	}
	return nil
}

// Hold copies the pieces of a packet still under way into the reassembler's own buffer: call it before the
// buffer the datagrams were read into is used again.
func (r *Reassembler) Hold() {
	if r.next == 0 || r.held == r.n {
		return
	}
	n, rest := r.held, r.parts
	if r.held > 0 {
		rest = rest[1:]
	}
	for _, p := range rest {
		n += copy(r.buf[n:], p)
	}
	r.held = n
	r.parts = append(r.parts[:0], r.buf[:n])
}

// Vectors cuts packet into datagrams of `segment` bytes (the last may be shorter), without copying it:
// for each datagram its header (written into headers, HeaderLen bytes per datagram) and its slice of
// packet, appended to iov in order, ready for one sendmsg with UDP_SEGMENT = segment. It returns iov and
// the number of datagrams.
func Vectors(iov [][]byte, headers, packet []byte, segment int, seq uint32, tag *Tag) ([][]byte, int, error) {
	if segment <= HeaderLen || segment > 65507 {
		return iov, 0, ErrBadSegment
	}
	count := Segments(len(packet), segment)
	if count > MaxSegments || len(packet) > MaxPacket || len(packet) == 0 || len(headers) < count*HeaderLen {
		return iov, 0, ErrTooLarge
	}
	payload := segment - HeaderLen
	for i := 0; i < count; i++ {
		h := headers[i*HeaderLen : (i+1)*HeaderLen]
		Header{Seq: seq, Index: uint8(i), Count: uint8(count)}.put(h, tag)
		iov = append(iov, h, packet[i*payload:min((i+1)*payload, len(packet))])
	}
	return iov, count, nil
}
