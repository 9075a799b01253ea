// Command ksi-wg runs a userspace WireGuard device in the HOST network
// namespace, as an unprivileged user, whose TUN interface lives inside another
// (rootless container's) network namespace. See README.md.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ksi-multi/helpers/nsenter"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

const usage = `ksi-wg: userspace WireGuard for rootless containers

  ksi-wg open-tun --netns-pid PID [--name wg0] [--mtu 1420] [--addr CIDR]... [--route CIDR]... --send-to SOCK
  ksi-wg up --uapi SOCK (--tun-fd-socket SOCK | --netns-pid PID [open-tun flags])
            [--listen-port N] [--listen-address ADDR] [--private-key-file F] [--config F|-] [--log-level error|verbose|silent]
  ksi-wg set --uapi SOCK [--config F|-]     (UAPI "set" text; keys may be base64)
  ksi-wg show --uapi SOCK                   (JSON)
  ksi-wg plain --netns-pid PID [open-tun flags] --status SOCK --listen-address ADDR --listen-port N
            --secret-file F [--path-mtu 1500] --peer NAME=ADDR:PORT=CIDR[,CIDR...]...   (unencrypted mesh)
  ksi-wg plain-show --status SOCK           (JSON)
  ksi-wg genkey | ksi-wg pubkey < private
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	defer startProfile()()
	var err error
	switch os.Args[1] {
	case "open-tun":
		err = cmdOpenTun(os.Args[2:])
	case "up":
		err = cmdUp(os.Args[2:])
	case "set":
		err = cmdSet(os.Args[2:])
	case "show":
		err = cmdShow(os.Args[2:])
	case "plain":
		err = cmdPlain(os.Args[2:])
	case "plain-show":
		err = cmdPlainShow(os.Args[2:])
	case "genkey":
		err = cmdGenkey()
	case "pubkey":
		err = cmdPubkey()
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ksi-wg:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// startProfile writes a CPU profile (pprof) to $KSI_WG_CPUPROFILE while the command runs: where the mesh
// spends its cycles (perf/mesh_pair.py --profile).
func startProfile() func() {
	path := os.Getenv("KSI_WG_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ksi-wg: cpu profile:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// fixedMTUDevice overrides MTU(): the library's NativeTun.MTU() looks the
// interface up BY NAME in the caller's (host) namespace, which is wrong here
// (ENODEV, or worse, a host interface that happens to have the same name).
type fixedMTUDevice struct {
	tun.Device
	mtu int
}

func (d *fixedMTUDevice) MTU() (int, error) { return d.mtu, nil }

func cmdUp(argv []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	var spec tunSpec
	spec.register(fs)
	fdSock := fs.String("tun-fd-socket", "", "listen on this unix socket for a TUN fd sent by 'ksi-wg open-tun --send-to'")
	uapiPath := fs.String("uapi", "", "path of the UAPI unix socket to serve (mode 0600)")
	listenPort := fs.Int("listen-port", -1, "UDP listen port")
	listenAddr := fs.String("listen-address", "", "listen on this local address only (default: every address, v4 and v6)")
	keyFile := fs.String("private-key-file", "", "file with the base64 private key")
	config := fs.String("config", "", "UAPI 'set' text (without set=1) to apply at start; '-' for stdin")
	logLevel := fs.String("log-level", "error", "silent, error or verbose")
	wait := fs.Duration("fd-timeout", 60*time.Second, "how long to wait for the TUN fd on --tun-fd-socket")
	stock := fs.Bool("stock-datapath", false, "benchmarking only: wireguard-go's own checksums and send batching (on every peer)")
	fs.Parse(argv)
	if *uapiPath == "" {
		return fmt.Errorf("--uapi is required")
	}

	// 1. Get the TUN fd.
	var fd, mtu int
	var name string
	var err error
	switch {
	case *fdSock != "":
		fd, name, mtu, err = waitForFD(*fdSock, *wait)
	case spec.pid > 0:
		fd, name, mtu, err = spawnOpenTun(&spec)
	default:
		return fmt.Errorf("one of --tun-fd-socket or --netns-pid is required")
	}
	if err != nil {
		return err
	}
	if mtu <= 0 {
		mtu = spec.mtu
	}

	// 2. Wrap it. CreateUnmonitoredTUNFromFD does TUNGETIFF on the fd and, if
	// IFF_VNET_HDR is set, TUNSETOFFLOAD (TSO4/6 + CSUM, and USO4/6 where the
	// kernel has it): no name lookup, no MTU change, no netlink listener.
	tdev, tname, err := tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		return fmt.Errorf("wrap tun fd: %w", err)
	}
	if name == "" {
		name = tname
	}
	lvl := map[string]int{"silent": device.LogLevelSilent, "error": device.LogLevelError, "verbose": device.LogLevelVerbose}[*logLevel]
	logger := device.NewLogger(lvl, fmt.Sprintf("(%s) ", name))
	offload := "off (batch 1: fd opened without IFF_VNET_HDR?)"
	if tdev.BatchSize() > 1 {
		offload = fmt.Sprintf("on (vnet_hdr, TUN batch %d)", tdev.BatchSize())
	}
	// Every peer is this program: TCP and UDP checksums are left to the kernels at both ends (the tunnel
	// authenticates every byte), and a batch of packets goes to the kernel as vectors (wireguard-patch/).
	tun.PartialChecksums = !*stock && tdev.BatchSize() > 1
	conn.SendVectors = !*stock
	datapath := "partial checksums, vector sends"
	if *stock {
		datapath = "stock data path (full checksums, copying sends)"
	} else if !tun.PartialChecksums {
		datapath = "full checksums (no vnet header), vector sends"
	}
	fmt.Fprintf(os.Stderr, "ksi-wg: tun %s mtu %d, offload %s, %s\n", name, mtu, offload, datapath)

	if *listenAddr != "" {
		addr, err := netip.ParseAddr(*listenAddr)
		if err != nil {
			tdev.Close()
			return fmt.Errorf("--listen-address: %w", err)
		}
		conn.ListenAddress = addr
	}
	dev := device.NewDevice(&fixedMTUDevice{Device: tdev, mtu: mtu}, conn.NewDefaultBind(), logger)

	// 3. Configure.
	var cfg strings.Builder
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			dev.Close()
			return err
		}
		fmt.Fprintf(&cfg, "private_key=%s\n", strings.TrimSpace(string(b)))
	}
	if *listenPort >= 0 {
		fmt.Fprintf(&cfg, "listen_port=%d\n", *listenPort)
	}
	if *config != "" {
		b, err := readConfigArg(*config)
		if err != nil {
			dev.Close()
			return err
		}
		cfg.Write(b)
	}
	if s, err := normalizeUAPI(cfg.String()); err != nil {
		dev.Close()
		return err
	} else if err := dev.IpcSet(s); err != nil {
		dev.Close()
		return fmt.Errorf("configure: %w", err)
	}
	if err := dev.Up(); err != nil { // unmonitored TUN sends no EventUp
		dev.Close()
		return fmt.Errorf("up: %w", err)
	}

	// 4. Serve the UAPI on our own socket path.
	os.Remove(*uapiPath)
	old := unix.Umask(0o077)
	ln, err := net.Listen("unix", *uapiPath)
	unix.Umask(old)
	if err != nil {
		dev.Close()
		return fmt.Errorf("uapi listen: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	fmt.Fprintf(os.Stderr, "ksi-wg: %s up, uapi %s\n", name, *uapiPath)

	// 5. Run until SIGTERM/SIGINT.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "ksi-wg: %v, shutting down\n", s)
	case <-dev.Wait():
	}
	ln.Close()
	os.Remove(*uapiPath)
	dev.Close() // closes the TUN fd: the interface in the namespace disappears
	return nil
}

func waitForFD(path string, timeout time.Duration) (int, string, int, error) {
	os.Remove(path)
	old := unix.Umask(0o077)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return -1, "", 0, err
	}
	defer os.Remove(path)
	defer ln.Close()
	ln.SetDeadline(time.Now().Add(timeout))
	c, err := ln.AcceptUnix()
	if err != nil {
		return -1, "", 0, fmt.Errorf("waiting for tun fd on %s: %w", path, err)
	}
	defer c.Close()
	f, err := c.File()
	if err != nil {
		return -1, "", 0, err
	}
	defer f.Close()
	return recvTunFD(int(f.Fd()))
}

func spawnOpenTun(spec *tunSpec) (int, string, int, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", 0, err
	}
	mine := os.NewFile(uintptr(pair[0]), "ksi-wg-fdsock")
	theirs := os.NewFile(uintptr(pair[1]), "ksi-wg-fdsock-child")
	defer mine.Close()
	err = nsenter.Run(spec.pid, []*os.File{theirs}, append([]string{"open-tun"}, append(spec.args(), "--send-fd", "3")...)...)
	theirs.Close()
	if err != nil {
		return -1, "", 0, err
	}
	return recvTunFD(int(mine.Fd()))
}

func readConfigArg(p string) ([]byte, error) {
	if p == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(p)
}

// normalizeUAPI drops comments/blank lines and converts base64 keys to hex.
func normalizeUAPI(s string) (string, error) {
	var out strings.Builder
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return "", fmt.Errorf("bad config line %q", l)
		}
		if k == "private_key" || k == "public_key" || k == "preshared_key" {
			if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) == 32 {
				v = hex.EncodeToString(b)
			}
		}
		fmt.Fprintf(&out, "%s=%s\n", k, v)
	}
	return out.String(), nil
}

func uapiRoundTrip(path, req string) ([]string, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			break
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "errno=") {
		return nil, fmt.Errorf("truncated UAPI reply")
	}
	if e := lines[len(lines)-1]; e != "errno=0" {
		return nil, fmt.Errorf("UAPI error: %s", e)
	}
	return lines[:len(lines)-1], nil
}

func cmdSet(argv []string) error {
	fs := flag.NewFlagSet("set", flag.ExitOnError)
	uapiPath := fs.String("uapi", "", "UAPI socket")
	config := fs.String("config", "-", "UAPI 'set' text (without set=1); '-' for stdin")
	fs.Parse(argv)
	b, err := readConfigArg(*config)
	if err != nil {
		return err
	}
	s, err := normalizeUAPI(string(b))
	if err != nil {
		return err
	}
	_, err = uapiRoundTrip(*uapiPath, "set=1\n"+s+"\n")
	return err
}

type peerInfo struct {
	PublicKey           string   `json:"public_key"`
	Endpoint            string   `json:"endpoint,omitempty"`
	AllowedIPs          []string `json:"allowed_ips"`
	LatestHandshake     int64    `json:"latest_handshake"` // unix seconds, 0 = never
	RxBytes             uint64   `json:"rx_bytes"`
	TxBytes             uint64   `json:"tx_bytes"`
	PersistentKeepalive int      `json:"persistent_keepalive"`
}

type ifInfo struct {
	PublicKey  string     `json:"public_key,omitempty"`
	ListenPort int        `json:"listen_port"`
	Peers      []peerInfo `json:"peers"`
}

func hexToB64(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		return h
	}
	return base64.StdEncoding.EncodeToString(b)
}

func cmdShow(argv []string) error {
	fs := flag.NewFlagSet("show", flag.ExitOnError)
	uapiPath := fs.String("uapi", "", "UAPI socket")
	fs.Parse(argv)
	lines, err := uapiRoundTrip(*uapiPath, "get=1\n\n")
	if err != nil {
		return err
	}
	info := ifInfo{Peers: []peerInfo{}}
	var p *peerInfo
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "private_key": // never printed; derive the public key
			if b, err := hex.DecodeString(v); err == nil {
				if pub, err := curve25519.X25519(b, curve25519.Basepoint); err == nil {
					info.PublicKey = base64.StdEncoding.EncodeToString(pub)
				}
			}
		case "listen_port":
			info.ListenPort, _ = strconv.Atoi(v)
		case "public_key":
			info.Peers = append(info.Peers, peerInfo{PublicKey: hexToB64(v), AllowedIPs: []string{}})
			p = &info.Peers[len(info.Peers)-1]
		}
		if p == nil {
			continue
		}
		switch k {
		case "endpoint":
			p.Endpoint = v
		case "allowed_ip":
			p.AllowedIPs = append(p.AllowedIPs, v)
		case "last_handshake_time_sec":
			p.LatestHandshake, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			p.RxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			p.TxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "persistent_keepalive_interval":
			p.PersistentKeepalive, _ = strconv.Atoi(v)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}

func cmdGenkey() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	fmt.Println(base64.StdEncoding.EncodeToString(k[:]))
	return nil
}

func cmdPubkey() error {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return fmt.Errorf("invalid private key")
	}
	pub, err := curve25519.X25519(k, curve25519.Basepoint)
	if err != nil {
		return err
	}
	fmt.Println(base64.StdEncoding.EncodeToString(pub))
	return nil
}
