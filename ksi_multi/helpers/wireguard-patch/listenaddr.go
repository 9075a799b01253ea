// Added to golang.zx2c4.com/wireguard/conn by the ksi-multi image build (see README.md there): the
// standard bind listens on every local address, v4 and v6; a job's mesh must listen on its host's
// cluster address only, nothing else of the job being reachable.

package conn

import (
	"context"
	"net"
	"net/netip"
	"syscall"
)

// ListenAddress, when valid, is the one local address the bind listens on; the other address
// family is then not opened at all.
var ListenAddress netip.Addr

func listenPacket(ctx context.Context, network, port string) (net.PacketConn, error) {
	if !ListenAddress.IsValid() {
		return listenConfig().ListenPacket(ctx, network, ":"+port)
	}
	if ListenAddress.Is4() != (network == "udp4") {
		return nil, syscall.EAFNOSUPPORT // Open goes on without this family
	}
	return listenConfig().ListenPacket(ctx, network, net.JoinHostPort(ListenAddress.String(), port))
}
