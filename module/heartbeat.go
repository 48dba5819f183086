package module

import "time"

// heartbeatSlices is how many ticks one ping interval is cut into. One goroutine for the whole
// node replaces a ticker per connection (a ticker costs ~200 bytes and a wake-up per connection;
// this costs one wake-up per tick for all of them), and pings fall within 1/8 of the interval.
const heartbeatSlices = 8

// runHeartbeat pings every connection every websocket.pingInterval, drops connections silent for
// websocket.pongWait, and closes connections whose token expired (1008). It exits on Close.
func (h *Hub) runHeartbeat() {
	defer close(h.heartbeatDone)
	tick := max(h.cfg.PingInterval/heartbeatSlices, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var clients []*Client
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			clients = h.snapshot(clients[:0])
			n := now.UnixNano()
			round := h.heartbeatRound.Add(1)
			for _, c := range clients {
				c.checkHeartbeat(n)
				c.retireIdleWriter(round)
			}
			clear(clients)
		}
	}
}
