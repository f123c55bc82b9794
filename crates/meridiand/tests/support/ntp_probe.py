# ntp_probe.py: a tiny NTP test peer for the end-to-end tests (run inside a test namespace).
#
#   serve LOG            answer NTP client requests (mode 3) on UDP port 123, IPv4 and IPv6,
#                        as a stratum-2 server on the host clock; append one line per request
#                        to LOG: "request SRC_IP SRC_PORT TOS TRANSMIT_HEX"
#   query ADDR           send one client request to ADDR port 123, print "reply TOS STRATUM"
#                        (TOS: the received IPv4 TOS byte or IPv6 traffic class)
#   serve LOG FORGE      as serve; when the file FORGE exists, the next request first gets a
#                        forged reply (mode 4, stratum 1) whose origin is the hex timestamp in
#                        FORGE (then deleted; logged as "forged SRC_IP SRC_PORT ORIGIN_HEX"),
#                        then its genuine answer
#   sniff LOG            like serve, but never answers (records requests only)
import os
import select
import socket
import struct
import sys
import time

IP_TOS, IP_RECVTOS = 1, 13
IPV6_RECVTCLASS, IPV6_TCLASS = 66, 67
NTP_EPOCH = 2208988800


def ntp_now():
    t = time.time() + NTP_EPOCH
    return struct.pack("!II", int(t), int((t % 1) * 2**32))


def open_sockets(port):
    socks = []
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
    s4.bind(("0.0.0.0", port))
    socks.append(s4)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s6.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    s6.bind(("::", port))
    socks.append(s6)
    return socks


def tos_of(ancdata):
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, IP_TOS), (socket.IPPROTO_IPV6, IPV6_TCLASS)):
            return data[0] if len(data) == 1 else struct.unpack("i", data[:4])[0]
    return -1


def reply_to(request, received):
    li_vn = request[0] & 0x38  # LI 0, the request's version
    header = struct.pack("!BBbb", li_vn | 4, 2, request[2], -20)
    root = struct.pack("!II", 0x00000100, 0x00000100)  # ~4 ms delay and dispersion
    refid = socket.inet_aton("198.18.255.1")
    return header + root + refid + received + request[40:48] + received + ntp_now()


def forged(origin):
    now = ntp_now()
    header = struct.pack("!BBbb", 0x24, 1, 0, -20) + bytes(8) + b"GPS\0"
    return header + now + origin + now + now


def take(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if len(text) != 16:
        return None
    os.unlink(path)
    return bytes.fromhex(text)


def serve(log, answer, forge_file=None):
    socks = open_sockets(123)
    with open(log, "a", buffering=1) as out:
        while True:
            ready, _, _ = select.select(socks, [], [])
            for s in ready:
                data, anc, _, src = s.recvmsg(2048, socket.CMSG_SPACE(4))
                received = ntp_now()
                if len(data) < 48 or data[0] & 7 != 3:
                    continue
                out.write("request %s %d %d %s\n" % (src[0], src[1], tos_of(anc), data[40:48].hex()))
                origin = take(forge_file) if forge_file else None
                if origin is not None:
                    s.sendto(forged(origin), src)
                    out.write("forged %s %d %s\n" % (src[0], src[1], origin.hex()))
                if answer:
                    s.sendto(reply_to(data, received), src)


def query(addr):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
    s.settimeout(2)
    s.sendto(bytes([0x23]) + bytes(39) + ntp_now(), (addr, 123))
    data, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(4))
    print("reply %d %d" % (tos_of(anc), data[1]))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], True, sys.argv[3] if len(sys.argv) > 3 else None)
    elif cmd == "sniff":
        serve(sys.argv[2], False)
    elif cmd == "query":
        query(sys.argv[2])
