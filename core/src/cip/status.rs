//! CIP status codes: the general status byte of every Message Router reply, and the
//! Connection Manager's extended status words that explain a failed Forward Open,
//! Forward Close or Unconnected Send (general status 0x01).
//!
//! Numbers and names follow CIP Vol 1 Appendix B as Wireshark's `packet-cip.c` lists
//! them. A status is data inside a reply, never a Rust error: a server answers a bad
//! request with one of these, a client reports it to its caller.
//!
//! In scope: the codes, their names, `Display`. Out of scope: choosing which status a
//! device answers (that is the server engine's decision).

use serde::{Deserialize, Serialize};

macro_rules! status_codes {
    ($ty:ident, $int:ty, $width:literal, $what:literal; $($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        impl $ty {
            $($(#[$doc])* pub const $name: $ty = $ty($code);)*

            /// The standard name of this code, if it is one this crate knows.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 { $($code => Some($text),)* _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{name} (0x{:0w$X})", self.0, w = $width),
                    None => write!(f, concat!("unknown ", $what, " (0x{:0w$X})"), self.0, w = $width),
                }
            }
        }

        impl From<$int> for $ty {
            fn from(code: $int) -> Self {
                $ty(code)
            }
        }

        impl From<$ty> for $int {
            fn from(s: $ty) -> Self {
                s.0
            }
        }
    };
}

/// A CIP general status (the byte after the reserved byte of a Message Router reply).
///
/// Any byte is representable: unknown codes pass through and display as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GeneralStatus(pub u8);

impl GeneralStatus {
    /// True for [`GeneralStatus::SUCCESS`].
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// True for a success or a partial transfer (more data follows: Read Tag
    /// Fragmented, Template Read, the Symbol instance list upload).
    pub const fn is_ok_or_partial(self) -> bool {
        self.0 == 0x00 || self.0 == 0x06
    }
}

status_codes! { GeneralStatus, u8, 2, "general status";
    /// 0x00: the service succeeded.
    SUCCESS = 0x00, "Success";
    /// 0x01: a connection related service failed (see the extended status).
    CONNECTION_FAILURE = 0x01, "Connection failure";
    /// 0x02: resources needed for the service are unavailable.
    RESOURCE_UNAVAILABLE = 0x02, "Resource unavailable";
    /// 0x03: invalid parameter value (Logix: also a bad element count).
    INVALID_PARAMETER_VALUE = 0x03, "Invalid parameter value";
    /// 0x04: the path could not be parsed (bad segment type or value).
    PATH_SEGMENT_ERROR = 0x04, "Path segment error";
    /// 0x05: the path names an object, class, instance or tag that does not exist.
    PATH_DESTINATION_UNKNOWN = 0x05, "Path destination unknown";
    /// 0x06: only part of the data was transferred; more follows.
    PARTIAL_TRANSFER = 0x06, "Partial transfer";
    /// 0x07: the messaging connection was lost.
    CONNECTION_LOST = 0x07, "Connection lost";
    /// 0x08: the service is not supported by the object.
    SERVICE_NOT_SUPPORTED = 0x08, "Service not supported";
    /// 0x09: invalid attribute data.
    INVALID_ATTRIBUTE_VALUE = 0x09, "Invalid attribute value";
    /// 0x0A: an attribute in a Get/Set Attribute List reply has a non-zero status.
    ATTRIBUTE_LIST_ERROR = 0x0A, "Attribute list error";
    /// 0x0B: the object is already in the requested mode or state.
    ALREADY_IN_REQUESTED_MODE = 0x0B, "Already in requested mode/state";
    /// 0x0C: the object cannot perform the service in its current state.
    OBJECT_STATE_CONFLICT = 0x0C, "Object state conflict";
    /// 0x0D: the object to create already exists.
    OBJECT_ALREADY_EXISTS = 0x0D, "Object already exists";
    /// 0x0E: the attribute may not be set.
    ATTRIBUTE_NOT_SETTABLE = 0x0E, "Attribute not settable";
    /// 0x0F: privilege violation.
    PRIVILEGE_VIOLATION = 0x0F, "Privilege violation";
    /// 0x10: the device's state prohibits the service.
    DEVICE_STATE_CONFLICT = 0x10, "Device state conflict";
    /// 0x11: the reply would not fit in the reply buffer.
    REPLY_DATA_TOO_LARGE = 0x11, "Reply data too large";
    /// 0x12: the service would fragment a primitive value.
    FRAGMENTATION_OF_PRIMITIVE = 0x12, "Fragmentation of a primitive value";
    /// 0x13: the request carried too little data.
    NOT_ENOUGH_DATA = 0x13, "Not enough data";
    /// 0x14: the attribute is not supported.
    ATTRIBUTE_NOT_SUPPORTED = 0x14, "Attribute not supported";
    /// 0x15: the request carried too much data.
    TOO_MUCH_DATA = 0x15, "Too much data";
    /// 0x16: the object does not exist.
    OBJECT_DOES_NOT_EXIST = 0x16, "Object does not exist";
    /// 0x17: no fragmentation sequence is in progress.
    FRAGMENTATION_NOT_IN_PROGRESS = 0x17, "Service fragmentation sequence not in progress";
    /// 0x18: no stored attribute data.
    NO_STORED_ATTRIBUTE_DATA = 0x18, "No stored attribute data";
    /// 0x19: a store operation failed.
    STORE_OPERATION_FAILURE = 0x19, "Store operation failure";
    /// 0x1A: routing failure, the request packet is too large.
    ROUTING_REQUEST_TOO_LARGE = 0x1A, "Routing failure, request packet too large";
    /// 0x1B: routing failure, the response packet is too large.
    ROUTING_RESPONSE_TOO_LARGE = 0x1B, "Routing failure, response packet too large";
    /// 0x1C: an attribute list entry lacks its data.
    MISSING_ATTRIBUTE_LIST_ENTRY_DATA = 0x1C, "Missing attribute list entry data";
    /// 0x1D: invalid attribute value list.
    INVALID_ATTRIBUTE_VALUE_LIST = 0x1D, "Invalid attribute value list";
    /// 0x1E: an embedded service (in a Multiple Service Packet) failed.
    EMBEDDED_SERVICE_ERROR = 0x1E, "Embedded service error";
    /// 0x1F: vendor specific error (see the extended status).
    VENDOR_SPECIFIC_ERROR = 0x1F, "Vendor specific error";
    /// 0x20: a parameter does not meet the requirements of the service.
    INVALID_PARAMETER = 0x20, "Invalid parameter";
    /// 0x21: write-once value or medium already written.
    WRITE_ONCE_FAILURE = 0x21, "Write-once value or medium already written";
    /// 0x22: an invalid reply was received.
    INVALID_REPLY = 0x22, "Invalid reply received";
    /// 0x23: buffer overflow.
    BUFFER_OVERFLOW = 0x23, "Buffer overflow";
    /// 0x24: invalid message format.
    INVALID_MESSAGE_FORMAT = 0x24, "Invalid message format";
    /// 0x25: key failure in path (electronic key mismatch).
    KEY_FAILURE_IN_PATH = 0x25, "Key failure in path";
    /// 0x26: the path size is wrong for the request.
    PATH_SIZE_INVALID = 0x26, "Path size invalid";
    /// 0x27: unexpected attribute in list.
    UNEXPECTED_ATTRIBUTE_IN_LIST = 0x27, "Unexpected attribute in list";
    /// 0x28: invalid member id.
    INVALID_MEMBER_ID = 0x28, "Invalid Member ID";
    /// 0x29: member not settable.
    MEMBER_NOT_SETTABLE = 0x29, "Member not settable";
    /// 0x2A: group 2 only server general failure.
    GROUP_2_SERVER_FAILURE = 0x2A, "Group 2 only server general failure";
    /// 0x2B: unknown Modbus error.
    UNKNOWN_MODBUS_ERROR = 0x2B, "Unknown Modbus error";
    /// 0x2C: attribute not gettable.
    ATTRIBUTE_NOT_GETTABLE = 0x2C, "Attribute not gettable";
    /// 0xFF: general error; Logix qualifies it with an extended status such as
    /// [`LogixExtendedStatus::OUT_OF_RANGE`].
    GENERAL_ERROR = 0xFF, "General error";
}

/// An extended status word that Logix controllers return with general status 0xFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogixExtendedStatus(pub u16);

status_codes! { LogixExtendedStatus, u16, 4, "Logix extended status";
    /// 0x2104: the offset is beyond the end of the requested tag.
    OFFSET_OUT_OF_RANGE = 0x2104, "Offset beyond end of the requested tag";
    /// 0x2105: the number of elements or the offset is out of range for the tag.
    OUT_OF_RANGE = 0x2105, "Number of elements extends beyond the end of the requested tag";
    /// 0x2107: the data type in the request does not match the tag's type.
    TYPE_MISMATCH = 0x2107, "Data type used in request does not match target tag data type";
}

/// A Connection Manager extended status (with general status 0x01): why a Forward Open,
/// Forward Close or Unconnected Send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnectionManagerStatus(pub u16);

status_codes! { ConnectionManagerStatus, u16, 4, "Connection Manager extended status";
    /// 0x0100: connection in use or duplicate Forward Open.
    CONNECTION_IN_USE = 0x0100, "Connection in use or duplicate Forward Open";
    /// 0x0103: transport class and trigger combination not supported.
    TRANSPORT_CLASS_AND_TRIGGER_NOT_SUPPORTED = 0x0103, "Transport class and trigger combination not supported";
    /// 0x0106: ownership conflict.
    OWNERSHIP_CONFLICT = 0x0106, "Ownership conflict";
    /// 0x0107: target connection not found (Forward Close of an unknown connection).
    CONNECTION_NOT_FOUND = 0x0107, "Target connection not found";
    /// 0x0108: invalid network connection parameter.
    INVALID_NETWORK_CONNECTION_PARAMETER = 0x0108, "Invalid network connection parameter";
    /// 0x0109: invalid connection size.
    INVALID_CONNECTION_SIZE = 0x0109, "Invalid connection size";
    /// 0x0110: target for connection not configured.
    TARGET_NOT_CONFIGURED = 0x0110, "Target for connection not configured";
    /// 0x0111: RPI not supported.
    RPI_NOT_SUPPORTED = 0x0111, "RPI not supported";
    /// 0x0112: RPI value(s) not acceptable.
    RPI_NOT_ACCEPTABLE = 0x0112, "RPI value(s) not acceptable";
    /// 0x0113: out of connections.
    OUT_OF_CONNECTIONS = 0x0113, "Out of connections";
    /// 0x0114: vendor id or product code mismatch (electronic key).
    VENDOR_OR_PRODUCT_MISMATCH = 0x0114, "Vendor ID or product code mismatch";
    /// 0x0115: device type mismatch (electronic key).
    DEVICE_TYPE_MISMATCH = 0x0115, "Device type mismatch";
    /// 0x0116: revision mismatch (electronic key).
    REVISION_MISMATCH = 0x0116, "Revision mismatch";
    /// 0x0117: invalid produced or consumed application path.
    INVALID_APPLICATION_PATH = 0x0117, "Invalid produced or consumed application path";
    /// 0x0118: invalid or inconsistent configuration application path.
    INVALID_CONFIGURATION_PATH = 0x0118, "Invalid or inconsistent configuration application path";
    /// 0x0119: non-listen only connection not opened.
    NON_LISTEN_ONLY_NOT_OPENED = 0x0119, "Non-listen only connection not opened";
    /// 0x011A: target object out of connections.
    TARGET_OUT_OF_CONNECTIONS = 0x011A, "Target object out of connections";
    /// 0x011B: RPI is smaller than the production inhibit time.
    RPI_SMALLER_THAN_INHIBIT = 0x011B, "RPI is smaller than the production inhibit time";
    /// 0x011C: transport class not supported.
    TRANSPORT_CLASS_NOT_SUPPORTED = 0x011C, "Transport class not supported";
    /// 0x011D: production trigger not supported.
    PRODUCTION_TRIGGER_NOT_SUPPORTED = 0x011D, "Production trigger not supported";
    /// 0x011E: direction not supported.
    DIRECTION_NOT_SUPPORTED = 0x011E, "Direction not supported";
    /// 0x011F: invalid O->T fixed/variable.
    INVALID_O_T_FIXED_VARIABLE = 0x011F, "Invalid O->T Fixed/Variable";
    /// 0x0120: invalid T->O fixed/variable.
    INVALID_T_O_FIXED_VARIABLE = 0x0120, "Invalid T->O Fixed/Variable";
    /// 0x0121: invalid O->T priority.
    INVALID_O_T_PRIORITY = 0x0121, "Invalid O->T Priority";
    /// 0x0122: invalid T->O priority.
    INVALID_T_O_PRIORITY = 0x0122, "Invalid T->O Priority";
    /// 0x0123: invalid O->T connection type.
    INVALID_O_T_CONNECTION_TYPE = 0x0123, "Invalid O->T connection type";
    /// 0x0124: invalid T->O connection type.
    INVALID_T_O_CONNECTION_TYPE = 0x0124, "Invalid T->O connection type";
    /// 0x0125: invalid O->T redundant owner.
    INVALID_O_T_REDUNDANT_OWNER = 0x0125, "Invalid O->T redundant owner";
    /// 0x0126: invalid configuration size.
    INVALID_CONFIGURATION_SIZE = 0x0126, "Invalid configuration size";
    /// 0x0127: invalid O->T size.
    INVALID_O_T_SIZE = 0x0127, "Invalid O->T size";
    /// 0x0128: invalid T->O size.
    INVALID_T_O_SIZE = 0x0128, "Invalid T->O size";
    /// 0x0132: NULL Forward Open not supported.
    NULL_FORWARD_OPEN_NOT_SUPPORTED = 0x0132, "NULL ForwardOpen not supported";
    /// 0x0203: connection timed out.
    CONNECTION_TIMED_OUT = 0x0203, "Connection timed out";
    /// 0x0204: unconnected request timed out.
    UNCONNECTED_REQUEST_TIMED_OUT = 0x0204, "Unconnected request timed out";
    /// 0x0205: parameter error in unconnected request.
    UNCONNECTED_PARAMETER_ERROR = 0x0205, "Parameter error in unconnected request";
    /// 0x0206: message too large for Unconnected Send.
    MESSAGE_TOO_LARGE = 0x0206, "Message too large for UnconnectedSend";
    /// 0x0207: unconnected acknowledged without reply.
    UNCONNECTED_ACK_WITHOUT_REPLY = 0x0207, "Unconnected acknowledged without reply";
    /// 0x0301: no buffer memory available.
    NO_BUFFER_MEMORY = 0x0301, "No buffer memory available";
    /// 0x0302: network bandwidth not available for data.
    NETWORK_BANDWIDTH_NOT_AVAILABLE = 0x0302, "Network bandwidth not available for data";
    /// 0x0311: port not available (invalid port in a route path).
    INVALID_PORT = 0x0311, "Port not available";
    /// 0x0312: link address not valid.
    INVALID_LINK_ADDRESS = 0x0312, "Link address not valid";
    /// 0x0315: invalid segment in connection path.
    INVALID_SEGMENT_IN_PATH = 0x0315, "Invalid segment in connection path";
    /// 0x0316: Forward Close connection path mismatch.
    FORWARD_CLOSE_PATH_MISMATCH = 0x0316, "ForwardClose connection path mismatch";
    /// 0x0317: scheduling not specified.
    SCHEDULING_NOT_SPECIFIED = 0x0317, "Scheduling not specified";
    /// 0x0318: link address to self invalid.
    LINK_ADDRESS_TO_SELF_INVALID = 0x0318, "Link address to self invalid";
    /// 0x0319: secondary resources unavailable.
    SECONDARY_RESOURCES_UNAVAILABLE = 0x0319, "Secondary resources unavailable";
    /// 0x031A: rack connection already established.
    RACK_CONNECTION_ALREADY_ESTABLISHED = 0x031A, "Rack connection already established";
    /// 0x031B: module connection already established.
    MODULE_CONNECTION_ALREADY_ESTABLISHED = 0x031B, "Module connection already established";
    /// 0x031C: miscellaneous.
    MISCELLANEOUS = 0x031C, "Miscellaneous";
    /// 0x031D: redundant connection mismatch.
    REDUNDANT_CONNECTION_MISMATCH = 0x031D, "Redundant connection mismatch";
    /// 0x0800: network link offline.
    NETWORK_LINK_OFFLINE = 0x0800, "Network link offline";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_display() {
        assert_eq!(GeneralStatus::PATH_DESTINATION_UNKNOWN.0, 0x05);
        assert_eq!(
            GeneralStatus::PARTIAL_TRANSFER.to_string(),
            "Partial transfer (0x06)"
        );
        assert_eq!(GeneralStatus(0x77).name(), None);
        assert_eq!(
            GeneralStatus(0x77).to_string(),
            "unknown general status (0x77)"
        );
        assert!(GeneralStatus::PARTIAL_TRANSFER.is_ok_or_partial());
        assert!(!GeneralStatus::GENERAL_ERROR.is_ok_or_partial());
        assert_eq!(
            ConnectionManagerStatus::CONNECTION_NOT_FOUND.to_string(),
            "Target connection not found (0x0107)"
        );
        assert_eq!(ConnectionManagerStatus::INVALID_SEGMENT_IN_PATH.0, 0x0315);
        assert_eq!(LogixExtendedStatus::TYPE_MISMATCH.0, 0x2107);
        assert_eq!(u8::from(GeneralStatus::from(0x1E)), 0x1E);
    }
}
