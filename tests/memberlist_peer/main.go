// memberlist-peer: runs one hashicorp/memberlist (v0.2.2, Debian package)
// member for interoperability tests.
//
// Build (GOPATH mode, no network needed):
//
//	cd tests/memberlist_peer && GO111MODULE=off GOPATH=/usr/share/gocode \
//	    nice -n 19 go build -o /tmp/mlpeer .
//
// Output on stdout, one line per event, written immediately:
//
//	READY <name> <ip>:<port>          once, after Create and the optional Join
//	JOIN <name> <ip>:<port>           memberlist NotifyJoin (also fired for ourselves first)
//	LEAVE <name>                      memberlist NotifyLeave (node dead or left; also
//	                                  printed for ourselves when we Leave on SIGTERM)
//	UPDATE <name>                     memberlist NotifyUpdate (meta changed)
//	MEMBERS <n1>,<n2>,...             sorted Members() (alive + suspect; no state is
//	                                  available: Node.State is never filled in v0.2.2)
//	                                  printed every -members-every (default 500ms,
//	                                  0 = never) and immediately on SIGUSR1
//	LEFT                              after Leave+Shutdown on SIGTERM/SIGINT, before exit 0
//
// Diagnostics (memberlist's own log, join errors, -trace hex dumps) go to stderr.
package main

import (
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

var outMu sync.Mutex

// emit writes one line to stdout (os.Stdout is unbuffered: one write per line).
func emit(format string, args ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func hostPort(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// events implements memberlist.EventDelegate. memberlist calls these with its
// node lock held, so they must not call back into the Memberlist.
type events struct{}

func (events) NotifyJoin(n *memberlist.Node)   { emit("JOIN %s %s", n.Name, hostPort(n)) }
func (events) NotifyLeave(n *memberlist.Node)  { emit("LEAVE %s", n.Name) }
func (events) NotifyUpdate(n *memberlist.Node) { emit("UPDATE %s", n.Name) }

func printMembers(m *memberlist.Memberlist) {
	names := []string{}
	for _, n := range m.Members() {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	emit("MEMBERS %s", strings.Join(names, ","))
}

// ---------------------------------------------------------------------------
// Optional tracing transport: wraps NetTransport and hex-dumps every raw UDP
// packet and every TCP read/write chunk (before decryption / after
// encryption) to stderr.

type traceTransport struct {
	*memberlist.NetTransport
	pch  chan *memberlist.Packet
	sch  chan net.Conn
	stop chan struct{}
	once sync.Once
}

func trace(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "TRACE "+format+"\n", args...)
}

func newTraceTransport(nt *memberlist.NetTransport) *traceTransport {
	t := &traceTransport{
		NetTransport: nt,
		pch:          make(chan *memberlist.Packet),
		sch:          make(chan net.Conn),
		stop:         make(chan struct{}),
	}
	go func() {
		in := nt.PacketCh()
		for {
			select {
			case p := <-in:
				trace("udp-rx from=%s len=%d hex=%s", p.From, len(p.Buf), hex.EncodeToString(p.Buf))
				select {
				case t.pch <- p:
				case <-t.stop:
					return
				}
			case <-t.stop:
				return
			}
		}
	}()
	go func() {
		in := nt.StreamCh()
		for {
			select {
			case c := <-in:
				select {
				case t.sch <- &traceConn{Conn: c}:
				case <-t.stop:
					c.Close()
					return
				}
			case <-t.stop:
				return
			}
		}
	}()
	return t
}

func (t *traceTransport) PacketCh() <-chan *memberlist.Packet { return t.pch }
func (t *traceTransport) StreamCh() <-chan net.Conn           { return t.sch }

func (t *traceTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *traceTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	trace("udp-tx to=%s name=%q len=%d hex=%s", a.Addr, a.Name, len(b), hex.EncodeToString(b))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *traceTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *traceTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &traceConn{Conn: c}, nil
}

func (t *traceTransport) Shutdown() error {
	// Keep forwarding while the inner transport drains, then stop.
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	return err
}

type traceConn struct{ net.Conn }

func (c *traceConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		trace("tcp-rx local=%s remote=%s len=%d hex=%s", c.LocalAddr(), c.RemoteAddr(), n, hex.EncodeToString(b[:n]))
	}
	return n, err
}

func (c *traceConn) Write(b []byte) (int, error) {
	trace("tcp-tx local=%s remote=%s len=%d hex=%s", c.LocalAddr(), c.RemoteAddr(), len(b), hex.EncodeToString(b))
	return c.Conn.Write(b)
}

// ---------------------------------------------------------------------------

func main() {
	hostname, _ := os.Hostname()
	name := flag.String("name", hostname, "node name (must be unique in the cluster)")
	bind := flag.String("bind", "127.0.0.1", "IP address to bind UDP and TCP to")
	port := flag.Int("port", 7946, "port to bind UDP and TCP to (0 = pick one)")
	advertise := flag.String("advertise", "", "IP to advertise (default: the bound address)")
	join := flag.String("join", "", "comma-separated ip:port list to join (push/pull over TCP)")
	key := flag.String("key", "", "base64 16/24/32-byte AES key: enables encryption with this primary key")
	label := flag.String("label", "", "unsupported: memberlist v0.2.2 has no packet/stream labels")
	fast := flag.Bool("fast", false, "LAN profile with shortened timers (see -help)")
	proto := flag.Int("proto", int(memberlist.DefaultLANConfig().ProtocolVersion), "memberlist ProtocolVersion to speak (1..5; 1 => encryption version 0)")
	compress := flag.Bool("compress", true, "EnableCompression (LAN default true: streams are always LZW-compressed)")
	membersEvery := flag.Duration("members-every", 500*time.Millisecond, "print MEMBERS periodically (0 = only on SIGUSR1)")
	doTrace := flag.Bool("trace", false, "hex-dump raw UDP packets and TCP chunks to stderr")
	quiet := flag.Bool("quiet", false, "discard memberlist's own log output (default: stderr)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags]\n", os.Args[0])
		flag.PrintDefaults()
		fmt.Fprintf(os.Stderr, "\n-fast sets: ProbeInterval=200ms ProbeTimeout=100ms GossipInterval=50ms\n"+
			"  PushPullInterval=2s GossipToTheDeadTime=2s TCPTimeout=2s SuspicionMult=2\n"+
			"  (suspicion timeout then = 400ms for n<10 nodes: k=SuspicionMult-2=0, so min is used)\n")
	}
	flag.Parse()

	if *label != "" {
		fmt.Fprintln(os.Stderr, "error: -label is not supported by memberlist v0.2.2 (labels were added in a later release)")
		os.Exit(2)
	}

	conf := memberlist.DefaultLANConfig()
	conf.Name = *name
	conf.BindAddr = *bind
	conf.BindPort = *port
	conf.AdvertisePort = *port
	conf.AdvertiseAddr = *advertise
	conf.ProtocolVersion = uint8(*proto)
	conf.EnableCompression = *compress
	conf.Events = events{}
	if *fast {
		conf.ProbeInterval = 200 * time.Millisecond
		conf.ProbeTimeout = 100 * time.Millisecond
		conf.GossipInterval = 50 * time.Millisecond
		conf.PushPullInterval = 2 * time.Second
		conf.GossipToTheDeadTime = 2 * time.Second
		conf.TCPTimeout = 2 * time.Second
		conf.SuspicionMult = 2
	}
	var logger *log.Logger
	if *quiet {
		logger = log.New(ioutil.Discard, "", 0)
	} else {
		logger = log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
	}
	conf.Logger = logger

	if *key != "" {
		k, err := base64.StdEncoding.DecodeString(*key)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: bad -key: %v\n", err)
			os.Exit(2)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			fmt.Fprintf(os.Stderr, "error: bad -key: %v\n", err)
			os.Exit(2)
		}
		conf.SecretKey = k
	}

	// Build the transport ourselves so that it can optionally be traced.
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{*bind},
		BindPort:  *port,
		Logger:    logger,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: transport: %v\n", err)
		os.Exit(1)
	}
	if *port == 0 {
		conf.BindPort = nt.GetAutoBindPort()
		conf.AdvertisePort = conf.BindPort
	}
	if *doTrace {
		conf.Transport = newTraceTransport(nt)
	} else {
		conf.Transport = nt
	}

	m, err := memberlist.Create(conf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: create: %v\n", err)
		os.Exit(1)
	}

	if *join != "" {
		var addrs []string
		for _, a := range strings.Split(*join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		if n, err := m.Join(addrs); err != nil {
			fmt.Fprintf(os.Stderr, "JOINFAIL contacted=%d err=%v\n", n, err)
		}
	}
	emit("READY %s %s", conf.Name, hostPort(m.LocalNode()))

	sigCh := make(chan os.Signal, 4)
	signal.Notify(sigCh, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)

	var tick <-chan time.Time
	if *membersEvery > 0 {
		t := time.NewTicker(*membersEvery)
		defer t.Stop()
		tick = t.C
	}

	for {
		select {
		case <-tick:
			printMembers(m)
		case s := <-sigCh:
			if s == syscall.SIGUSR1 {
				printMembers(m)
				continue
			}
			if err := m.Leave(2 * time.Second); err != nil {
				fmt.Fprintf(os.Stderr, "leave: %v\n", err)
			}
			if err := m.Shutdown(); err != nil {
				fmt.Fprintf(os.Stderr, "shutdown: %v\n", err)
			}
			emit("LEFT")
			os.Exit(0)
		}
	}
}
