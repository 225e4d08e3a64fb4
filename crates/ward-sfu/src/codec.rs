//! What the SFU reads from RTP payloads: only whether a packet starts a keyframe, which is
//! where a subscriber may switch to another simulcast layer. Everything else is forwarded
//! untouched (so end-to-end encrypted frames pass: LiveKit's frame encryption leaves the
//! payload descriptor and the first bytes of the frame header in the clear for this purpose).

/// The video codecs the SFU negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
    Other,
}

/// Does this RTP payload begin a keyframe?
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_starts_keyframe(payload),
        VideoCodec::H264 => h264_starts_keyframe(payload),
        VideoCodec::Other => false,
    }
}

/// RFC 7741: the payload descriptor, then the VP8 payload header whose P bit is 0 on keyframes.
fn vp8_starts_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else { return false };
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = p.get(i) else { return false };
        i += 1;
        if ext & 0x80 != 0 {
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1;
        }
        if ext & 0x30 != 0 {
            i += 1;
        }
    }
    p.get(i).is_some_and(|header| header & 0x01 == 0)
}

/// RFC 6184: an IDR slice or a sequence parameter set, alone, aggregated (STAP-A) or at the
/// start of a fragmented unit (FU-A).
fn h264_starts_keyframe(p: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&first) = p.first() else { return false };
    match first & 0x1f {
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                if size == 0 {
                    return false;
                }
                if is_key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p.get(1).is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        t => is_key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_recognised() {
        // S=1, PID=0, no extension; payload header P=0.
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        // Interframe: P=1.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x10, 0x01]));
        // Not the start of a partition.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
        // Extended: I with a 15-bit picture ID, L, T/K.
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x01]));
        // Truncated descriptors never panic.
        for len in 0..7 {
            let _ = starts_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00][..len]);
        }
    }

    #[test]
    fn h264_keyframes_are_recognised() {
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS.
        assert!(starts_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        // FU-A start of an IDR; FU-A continuation is not a start.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[]));
    }
}
