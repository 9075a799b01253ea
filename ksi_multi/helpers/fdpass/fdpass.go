// Package fdpass hands one file descriptor and a short text over a unix
// socket (SCM_RIGHTS): how a helper that entered a node's namespaces gives a
// TUN or a socket made there to a process that stays in the host's.
package fdpass

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Send sends fd with payload over the connected unix socket sock.
func Send(sock int, payload string, fd int) error {
	if err := unix.Sendmsg(sock, []byte(payload), unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("send fd: %w", err)
	}
	return nil
}

// SendText sends a message without a descriptor (an error reply).
func SendText(sock int, payload string) error {
	return unix.Sendmsg(sock, []byte(payload), nil, nil, 0)
}

// Recv receives one fd and its payload from the connected unix socket sock.
func Recv(sock int) (int, string, error) {
	fd, payload, err := RecvMaybe(sock)
	if err == nil && fd < 0 {
		err = fmt.Errorf("no fd received (peer failed?)")
	}
	return fd, payload, err
}

// RecvMaybe receives one message; its fd is -1 when it carried none.
// io.EOF-like end of the peer shows as an error on an empty read.
func RecvMaybe(sock int) (int, string, error) {
	buf := make([]byte, 512)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return -1, "", fmt.Errorf("recvmsg: %w", err)
	}
	if n == 0 && oobn == 0 {
		return -1, "", fmt.Errorf("peer closed")
	}
	if oobn == 0 {
		return -1, string(buf[:n]), nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, string(buf[:n]), fmt.Errorf("bad control message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, "", fmt.Errorf("bad SCM_RIGHTS message")
	}
	return fds[0], string(buf[:n]), nil
}
