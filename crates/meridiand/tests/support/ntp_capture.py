# ntp_capture.py: a packet capture for the end-to-end tests (run inside a test namespace).
#
#   capture LOG IFACE    record every NTP datagram (UDP port 123 at either end, IPv4 or IPv6)
#                        seen on IFACE, both directions, as it is on the wire (AF_PACKET), one
#                        line per datagram appended to LOG:
#                        "packet DIR SRC_IP SRC_PORT DST_IP DST_PORT TOS MODE STRATUM"
#                        DIR is "in" or "out" (as seen from IFACE's namespace), TOS the IPv4
#                        TOS byte or the IPv6 traffic class, MODE and STRATUM from the NTP header.
# Needs CAP_NET_RAW (the tests run as root). No tcpdump needed.
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def parse(frame):
    """(src, sport, dst, dport, tos, payload) of a UDP datagram in an Ethernet frame, or None."""
    if len(frame) < 14:
        return None
    kind = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if kind == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or len(ip) < ihl + 8:
            return None
        tos = ip[1]
        src = socket.inet_ntop(socket.AF_INET, ip[12:16])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
        udp = ip[ihl:]
    elif kind == 0x86DD and len(ip) >= 48:
        if ip[6] != 17:
            return None
        tos = ((ip[0] & 0x0F) << 4) | (ip[1] >> 4)
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        udp = ip[40:]
    else:
        return None
    sport, dport = struct.unpack("!HH", udp[0:4])
    return src, sport, dst, dport, tos, udp[8:]


def capture(log, iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, ETH_P_ALL))
    with open(log, "a", buffering=1) as out:
        out.write("ready %s\n" % iface)
        while True:
            frame, addr = s.recvfrom(65535)
            got = parse(frame)
            if got is None:
                continue
            src, sport, dst, dport, tos, ntp = got
            if 123 not in (sport, dport) or len(ntp) < 48:
                continue
            direction = "out" if addr[2] == PACKET_OUTGOING else "in"
            out.write(
                "packet %s %s %d %s %d %d %d %d\n"
                % (direction, src, sport, dst, dport, tos, ntp[0] & 7, ntp[1])
            )


if __name__ == "__main__":
    if sys.argv[1] == "capture":
        capture(sys.argv[2], sys.argv[3])
