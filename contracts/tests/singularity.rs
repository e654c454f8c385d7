//! The NIC device contract from the Singularity papers (Fähndrich et al., "Language Support for Fast and Reliable
//! Message-based Communication in Singularity OS", EuroSys 2006, listing 1), transcribed in `docs/contracts.md`
//! and compiled here. The test checks that the documentation shows exactly this source, drives a device
//! through configuration and I/O, and checks the capacities the macro derived.

use channels::{Closed, ExVec};
use contracts::{Exchangeable, contract};

// nic-device:start
/// What the client configures.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Debug)]
pub struct NicParameters {
    /// Receive frames for every address.
    pub promiscuous: bool,
    /// Receive buffers the client will provide (0 is invalid).
    pub receive_buffers: u32,
}

/// Events the device reports on its event channel.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NicEventType {
    /// The link came up.
    LinkUp,
    /// The link went down.
    LinkDown,
    /// Buffers were filled.
    PacketsReceived,
}

contract! {
    /// Sing#: `contract NicEvents { out message NicDeviceEvent(NicEventType eventType); in message AckEvent();
    /// state READY: one { NicDeviceEvent! -> AckEvent? -> READY; } }`
    pub contract NicEvents {
        out message NicDeviceEvent(event: NicEventType);
        in message AckEvent;
        initial state Ready { NicDeviceEvent! -> Acking }
        state Acking { AckEvent? -> Ready }
    }
}

contract! {
    /// Sing#'s `NicDevice`. Sing# writes `RegisterForEvents? -> SetParameters? -> IO_CONFIGURE_ACK` and
    /// `PacketForReceive? -> (Success! or BadPacketSize!) -> IO_RUNNING`; here every intermediate state is named.
    /// The paper elides the rest of `IO_RUNNING` (`...`); `StopIO`, acknowledged by `Success`, stands in for it
    /// (unacknowledged, `StartIO`/`StopIO` would be a cycle of `in` messages: an unbounded queue).
    pub contract NicDevice {
        out message DeviceInfo(mac: [u8; 6], mtu: u32);
        in message RegisterForEvents(events: nic_events::Server<nic_events::state::Ready>);
        in message SetParameters(parameters: NicParameters);
        out message InvalidParameters(parameters: NicParameters);
        out message Success;
        in message StartIO;
        in message ConfigureIO;
        in message PacketForReceive(buffer: ExVec<u8>);
        out message BadPacketSize(buffer: ExVec<u8>, expected: u32);
        in message GetReceivedPacket;
        out message ReceivedPacket(buffer: ExVec<u8>);
        out message NoPacket;
        in message StopIO;

        initial state Start { DeviceInfo! -> IoConfigureBegin }
        state IoConfigureBegin { RegisterForEvents? -> IoConfigureParameters }
        state IoConfigureParameters { SetParameters? -> IoConfigureAck }
        state IoConfigureAck { InvalidParameters! -> IoConfigureBegin; Success! -> IoConfigured }
        state IoConfigured { StartIO? -> IoRunning; ConfigureIO? -> IoConfigureBegin }
        state IoRunning { PacketForReceive? -> ReceiveAck; GetReceivedPacket? -> Polling; StopIO? -> Stopping }
        state ReceiveAck { Success! -> IoRunning; BadPacketSize! -> IoRunning }
        state Polling { ReceivedPacket! -> IoRunning; NoPacket! -> IoRunning }
        state Stopping { Success! -> IoConfigured }
    }
}
// nic-device:end

/// Whitespace-insensitive text between two marker lines.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_documentation_shows_this_very_contract() {
    let source = include_str!("singularity.rs");
    let docs = include_str!("../../docs/contracts.md");
    let here = between(source, "// nic-device:start\n", "// nic-device:end").expect("markers in this file");
    let shown = between(docs, "<!-- nic-device:start -->", "<!-- nic-device:end -->").expect("markers in the docs");
    let shown = between(shown, "```rust", "```").expect("a rust block between the markers");
    assert_eq!(normalize(here), normalize(shown), "docs/contracts.md and tests/singularity.rs disagree");
}

#[test]
fn the_macro_derives_the_bounds_sing_sharp_would() {
    use channels::Contract;
    // ConfigureIO, RegisterForEvents, SetParameters: three client messages before the device must answer.
    assert_eq!(<nic_device::NicDevice as Contract>::TO_SERVER_CAPACITY, 3);
    assert_eq!(<nic_device::NicDevice as Contract>::TO_CLIENT_CAPACITY, 1);
    assert_eq!(<nic_events::NicEvents as Contract>::TO_SERVER_CAPACITY, 1);
    let dot = nic_device::INFO.to_dot();
    assert!(
        dot.contains(
            "\"IoConfigureAck\" -> \"IoConfigureBegin\" [label=\"InvalidParameters!(parameters: NicParameters)\"];"
        ),
        "{dot}"
    );
    assert!(dot.contains("\"IoRunning\" -> \"ReceiveAck\" [label=\"PacketForReceive?(buffer: ExVec<u8>)\"];"), "{dot}");
}

#[test]
fn a_device_is_configured_and_moves_packets() {
    use nic_device::{client, server};
    let (driver_user, device) = nic_device::channel();
    let device_thread = std::thread::spawn(move || {
        let configuring = device.send_device_info([2, 0, 0, 0, 0, 1], 1500).expect("client");
        let mut configuring = configuring;
        let (events, running) = loop {
            let Ok(server::IoConfigureBegin::RegisterForEvents { events, endpoint: s }) = configuring.recv() else {
                panic!("register")
            };
            let Ok(server::IoConfigureParameters::SetParameters { parameters, endpoint: s }) = s.recv() else {
                panic!("parameters")
            };
            if parameters.receive_buffers == 0 {
                drop(events);
                configuring = s.send_invalid_parameters(parameters).expect("client");
                continue;
            }
            let configured = s.send_success().expect("client");
            let Ok(server::IoConfigured::StartIO(running)) = configured.recv() else { panic!("start") };
            break (events, running);
        };
        // Report link up on the event channel that came inside RegisterForEvents.
        let events = events.send_nic_device_event(NicEventType::LinkUp).expect("events client");
        let Ok(nic_events::server::Acking::AckEvent(_events)) = events.recv() else { panic!("ack") };
        let mut running = running;
        let mut buffers = Vec::new();
        loop {
            running = match running.recv() {
                Ok(server::IoRunning::PacketForReceive { buffer, endpoint: s }) if buffer.len() < 64 => {
                    let size = buffer.len() as u32;
                    s.send_bad_packet_size(buffer, size).expect("client")
                }
                Ok(server::IoRunning::PacketForReceive { buffer, endpoint: s }) => {
                    buffers.push(buffer);
                    s.send_success().expect("client")
                }
                Ok(server::IoRunning::GetReceivedPacket(s)) => match buffers.pop() {
                    Some(mut buffer) => {
                        buffer[0] = 0xAB; // "receive" a packet into the client's buffer
                        s.send_received_packet(buffer).expect("client")
                    }
                    None => s.send_no_packet().expect("client"),
                },
                Ok(server::IoRunning::StopIO(s)) => {
                    drop(s.send_success().expect("client"));
                    return;
                }
                Err(Closed) => panic!("client vanished"),
            };
        }
    });

    let Ok(client::Start::DeviceInfo { mac, mtu, endpoint: user }) = driver_user.recv() else { panic!("device info") };
    assert_eq!((mac[0], mtu), (2, 1500));
    let (events_client, events_server) = nic_events::channel();
    let user = user.send_register_for_events(events_server).expect("device");
    let user = user.send_set_parameters(NicParameters { promiscuous: false, receive_buffers: 0 }).expect("device");
    let Ok(client::IoConfigureAck::InvalidParameters { parameters, endpoint: user }) = user.recv() else {
        panic!("rejected")
    };
    assert_eq!(parameters.receive_buffers, 0);
    let (events_client, events_server) = {
        drop(events_client);
        nic_events::channel()
    };
    let user = user.send_register_for_events(events_server).expect("device");
    let user = user.send_set_parameters(NicParameters { promiscuous: false, receive_buffers: 4 }).expect("device");
    let Ok(client::IoConfigureAck::Success(user)) = user.recv() else { panic!("configured") };
    let user = user.send_start_io().expect("device");
    let Ok(nic_events::client::Ready::NicDeviceEvent { event: NicEventType::LinkUp, endpoint: events }) =
        events_client.recv()
    else {
        panic!("link up")
    };
    drop(events.send_ack_event().expect("device"));

    let user = user.send_get_received_packet().expect("device");
    let Ok(client::Polling::NoPacket(user)) = user.recv() else { panic!("no packet yet") };
    let user = user.send_packet_for_receive(ExVec::from_slice(&[0u8; 16])).expect("device");
    let Ok(client::ReceiveAck::BadPacketSize { buffer, expected: 16, endpoint: user }) = user.recv() else {
        panic!("too small")
    };
    assert_eq!(buffer.len(), 16, "the buffer comes back");
    let user = user.send_packet_for_receive(ExVec::from_slice(&[0u8; 1514])).expect("device");
    let Ok(client::ReceiveAck::Success(user)) = user.recv() else { panic!("accepted") };
    let user = user.send_get_received_packet().expect("device");
    let Ok(client::Polling::ReceivedPacket { buffer, endpoint: user }) = user.recv() else { panic!("a packet") };
    assert_eq!((buffer.len(), buffer[0]), (1514, 0xAB));
    let Ok(client::Stopping::Success(_configured)) = user.send_stop_io().expect("device").recv() else {
        panic!("stopped")
    };
    device_thread.join().expect("device thread");
}
