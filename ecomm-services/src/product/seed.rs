//! The sample catalogue loaded into an empty database on first start (40 products, EUR).

use super::model::{ProductError, ProductInput, ValidProduct};

/// (sku, name, description, price in cents, stock).
const SAMPLE: [(&str, &str, &str, i64, i64); 40] = [
    (
        "KB-001",
        "Mechanical keyboard",
        "Tenkeyless, brown switches",
        4999,
        12,
    ),
    (
        "KB-002",
        "Low-profile keyboard",
        "Wireless, scissor switches",
        6999,
        30,
    ),
    (
        "KB-003",
        "Ergonomic split keyboard",
        "Tented halves, USB-C",
        15900,
        5,
    ),
    ("MS-001", "Optical mouse", "Wired, 1600 dpi", 1499, 80),
    (
        "MS-002",
        "Wireless mouse",
        "Bluetooth and 2.4 GHz",
        2999,
        45,
    ),
    (
        "MS-003",
        "Trackball",
        "Thumb-operated, six buttons",
        5499,
        9,
    ),
    ("MN-001", "24-inch monitor", "1920x1080, IPS", 13900, 14),
    (
        "MN-002",
        "27-inch monitor",
        "2560x1440, IPS, 144 Hz",
        29900,
        7,
    ),
    ("MN-003", "Monitor arm", "Single arm, gas spring", 7900, 20),
    (
        "HS-001",
        "USB headset",
        "Closed-back, boom microphone",
        3999,
        25,
    ),
    (
        "HS-002",
        "Noise-cancelling headphones",
        "Over-ear, 30 h battery",
        19900,
        11,
    ),
    ("HS-003", "In-ear earphones", "Wired, 3.5 mm", 1299, 60),
    ("CB-001", "USB-C cable 1 m", "USB 2.0, 60 W", 699, 200),
    ("CB-002", "USB-C cable 2 m", "USB 3.2, 100 W", 1499, 150),
    ("CB-003", "HDMI cable 2 m", "HDMI 2.1", 999, 120),
    ("CB-004", "Ethernet cable 5 m", "Cat 6, snagless", 899, 90),
    ("HB-001", "USB hub", "Four USB-A ports, powered", 2499, 35),
    (
        "HB-002",
        "USB-C dock",
        "HDMI, Ethernet, SD, 100 W passthrough",
        8999,
        16,
    ),
    (
        "ST-001",
        "Laptop stand",
        "Aluminium, adjustable height",
        3499,
        28,
    ),
    ("ST-002", "Headphone stand", "Walnut", 2299, 17),
    (
        "WC-001",
        "Webcam 1080p",
        "Autofocus, privacy shutter",
        5999,
        22,
    ),
    ("WC-002", "Webcam 4K", "HDR, dual microphones", 12900, 6),
    ("MC-001", "USB microphone", "Cardioid condenser", 8999, 10),
    (
        "MC-002",
        "Microphone arm",
        "Desk clamp, cable management",
        2999,
        19,
    ),
    ("SP-001", "Desktop speakers", "2.0, 20 W", 4499, 13),
    ("SD-001", "SSD 1 TB", "NVMe, PCIe 4.0", 8999, 40),
    ("SD-002", "SSD 2 TB", "NVMe, PCIe 4.0", 15900, 21),
    ("SD-003", "Portable SSD 1 TB", "USB-C, 1050 MB/s", 10900, 18),
    ("MM-001", "microSD card 128 GB", "A2, V30", 1999, 75),
    ("MM-002", "USB stick 64 GB", "USB 3.2", 1099, 110),
    ("PW-001", "USB-C charger 65 W", "GaN, two ports", 3999, 33),
    ("PW-002", "Power bank 20000 mAh", "USB-C PD 45 W", 4999, 24),
    ("PW-003", "Surge protector", "Six sockets, 2 m", 2799, 27),
    (
        "NW-001",
        "Wi-Fi 6 router",
        "AX3000, four gigabit ports",
        11900,
        8,
    ),
    (
        "NW-002",
        "Gigabit switch",
        "Eight ports, unmanaged",
        2999,
        31,
    ),
    (
        "NW-003",
        "USB Ethernet adapter",
        "USB-C to 2.5 GbE",
        2499,
        29,
    ),
    ("DK-001", "Desk mat", "900x400 mm, felt", 2499, 36),
    ("DK-002", "Cable tray", "Under-desk, steel", 1999, 23),
    ("LT-001", "Desk lamp", "LED, dimmable, USB-C", 3999, 15),
    (
        "LT-002",
        "Monitor light bar",
        "Asymmetric, no screen glare",
        4999,
        12,
    ),
];

/// The sample catalogue, validated.
pub fn sample_catalogue() -> Result<Vec<ValidProduct>, ProductError> {
    SAMPLE
        .iter()
        .map(|&(sku, name, description, price_cents, stock)| {
            ProductInput {
                sku: sku.into(),
                name: name.into(),
                description: description.into(),
                price_cents,
                currency: "EUR".into(),
                stock,
            }
            .validate()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_valid_and_has_unique_skus() {
        let sample = sample_catalogue().unwrap();
        assert_eq!(sample.len(), 40);
        let mut skus: Vec<&str> = sample.iter().map(|p| p.fields().sku.as_str()).collect();
        skus.sort_unstable();
        skus.dedup();
        assert_eq!(skus.len(), 40);
    }
}
