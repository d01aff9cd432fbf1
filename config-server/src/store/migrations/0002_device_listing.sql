-- The device list pages over one table: every device with a layer gets a row (an operator may
-- write the layer of a device that never called; first_seen_at 0 says it never did), and a
-- listing filtered by type walks an index in id order. `auto` is not a type a device runs,
-- so a stored `auto` (an older exporter's header) says nothing and goes.
INSERT INTO devices (device, first_seen_at)
    SELECT substr(doc, 8), 0 FROM documents WHERE doc LIKE 'device:%'
    ON CONFLICT (device) DO NOTHING;
UPDATE devices SET device_type = NULL WHERE device_type = 'auto';
CREATE INDEX devices_by_type ON devices (device_type, device);
