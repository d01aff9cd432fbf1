//! shelly-bridge: keeps the outbound WebSocket connections of Shelly Gen2+ plugs and serves
//! their readings over HTTP, fetched on demand by JSON-RPC.
