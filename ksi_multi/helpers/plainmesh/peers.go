package plainmesh

import (
	"fmt"
	"net/netip"
	"strings"
)

// Peer is another node: where its datagrams come from and go to, and the addresses it serves (its mesh
// address, its pod range).
type Peer struct {
	Name     string
	Endpoint netip.AddrPort
	Allowed  []netip.Prefix
}

// Peers maps inner destinations to peers and outer sources to peers.
type Peers struct {
	list       []*Peer
	byEndpoint map[netip.AddrPort]int
}

// ParsePeer reads "NAME=ADDR:PORT=CIDR,CIDR...".
func ParsePeer(s string) (Peer, error) {
	parts := strings.Split(s, "=")
	if len(parts) != 3 || parts[0] == "" {
		return Peer{}, fmt.Errorf("peer %q: want NAME=ADDR:PORT=CIDR[,CIDR...]", s)
	}
	ep, err := netip.ParseAddrPort(parts[1])
	if err != nil {
		return Peer{}, fmt.Errorf("peer %q: %w", s, err)
	}
	p := Peer{Name: parts[0], Endpoint: ep}
	for _, c := range strings.Split(parts[2], ",") {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return Peer{}, fmt.Errorf("peer %q: %w", s, err)
		}
		p.Allowed = append(p.Allowed, pfx.Masked())
	}
	return p, nil
}

func NewPeers(list []Peer) (*Peers, error) {
	t := &Peers{byEndpoint: map[netip.AddrPort]int{}}
	for i := range list {
		p := list[i]
		if _, dup := t.byEndpoint[p.Endpoint]; dup {
			return nil, fmt.Errorf("two peers at %s", p.Endpoint)
		}
		for _, q := range t.list {
			for _, a := range p.Allowed {
				for _, b := range q.Allowed {
					if a.Overlaps(b) {
						return nil, fmt.Errorf("peers %s and %s both claim %s", q.Name, p.Name, a)
					}
				}
			}
		}
		t.byEndpoint[p.Endpoint] = len(t.list)
		t.list = append(t.list, &p)
	}
	return t, nil
}

func (t *Peers) Len() int       { return len(t.list) }
func (t *Peers) At(i int) *Peer { return t.list[i] }
func (t *Peers) List() []*Peer  { return t.list }

// From is the index of the peer that sends from src, or -1: a datagram from anywhere else is dropped.
func (t *Peers) From(src netip.AddrPort) int {
	if i, ok := t.byEndpoint[src]; ok {
		return i
	}
	// An IPv4 source may come as a 4-in-6 address from a dual-stack socket.
	if i, ok := t.byEndpoint[netip.AddrPortFrom(src.Addr().Unmap(), src.Port())]; ok {
		return i
	}
	return -1
}

// To is the index of the peer serving the packet's destination (packet: an IP packet, no virtio header),
// or -1.
func (t *Peers) To(packet []byte) int {
	dst, ok := destination(packet)
	if !ok {
		return -1
	}
	for i, p := range t.list {
		for _, a := range p.Allowed {
			if a.Contains(dst) {
				return i
			}
		}
	}
	return -1
}

func destination(packet []byte) (netip.Addr, bool) {
	if len(packet) < 1 {
		return netip.Addr{}, false
	}
	switch packet[0] >> 4 {
	case 4:
		if len(packet) >= 20 {
			return netip.AddrFrom4([4]byte(packet[16:20])), true
		}
	case 6:
		if len(packet) >= 40 {
			return netip.AddrFrom16([16]byte(packet[24:40])), true
		}
	}
	return netip.Addr{}, false
}
