package transport

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestSocketKeepsEveryWriteWholeAndInOrder: the write loop's batches and writes from another
// goroutine (gorilla's reader sends its 1009 close frame through the same socket) never
// interleave their bytes, and the batch's writes reach the peer in the order they were made,
// however gorilla splits a frame into calls. gorilla holds its own write lock while it writes one
// frame (its WriteControl may run beside its message writer: documented); frameLock stands for it.
func TestSocketKeepsEveryWriteWholeAndInOrder(t *testing.T) {
	server, client := tcpPair(t)
	s := &socket{Conn: server}
	const batches, perBatch, direct = 200, 7, 300
	pad := strings.Repeat("x", 3000) // records larger than a small batch, as big frames are
	var frameLock sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		n := 0
		for b := 0; b < batches; b++ {
			s.begin()
			for i := 0; i < perBatch; i++ {
				// A record written in two calls, as gorilla may write a header and a payload.
				rec := fmt.Sprintf("A%06d:%s\n", n, pad[:n%len(pad)])
				half := len(rec) / 2
				frameLock.Lock()
				_, _ = s.Write([]byte(rec[:half]))
				_, _ = s.Write([]byte(rec[half:]))
				frameLock.Unlock()
				n++
			}
			if err := s.flush(time.Now().Add(10 * time.Second)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < direct; i++ {
			frameLock.Lock()
			_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, err := s.Write([]byte(fmt.Sprintf("B%06d\n", i)))
			frameLock.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	done := make(chan struct{})
	var gotA, gotB int
	var readErr error
	go func() {
		defer close(done)
		r := bufio.NewReaderSize(client, 64<<10)
		for gotA < batches*perBatch || gotB < direct {
			line, err := r.ReadString('\n')
			if err != nil {
				readErr = err
				return
			}
			switch {
			case strings.HasPrefix(line, "A"):
				var n int
				if _, err := fmt.Sscanf(line[1:7], "%d", &n); err != nil || n != gotA || len(line) != 9+n%len(pad) {
					readErr = fmt.Errorf("batched record %d is %.40q... (len %d)", gotA, line, len(line))
					return
				}
				gotA++
			case strings.HasPrefix(line, "B") && len(line) == 8:
				gotB++
			default:
				readErr = fmt.Errorf("interleaved bytes: %.60q", line)
				return
			}
		}
	}()
	wg.Wait()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the peer did not read everything")
	}
	if readErr != nil {
		t.Fatal(readErr)
	}
}
