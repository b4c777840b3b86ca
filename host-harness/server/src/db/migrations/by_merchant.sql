
UPDATE kv SET ns = (SELECT m.id FROM merchants m WHERE m.account_id = kv.ns)
    WHERE ns IN (SELECT account_id FROM merchants WHERE account_id IS NOT NULL);
UPDATE kv SET ns = 'default' WHERE ns = ''
    AND EXISTS (SELECT 1 FROM merchants WHERE id = 'default' AND account_id IS NULL);
UPDATE outbox SET ns = (SELECT m.id FROM merchants m WHERE m.account_id = outbox.ns)
    WHERE ns IN (SELECT account_id FROM merchants WHERE account_id IS NOT NULL);
UPDATE outbox SET ns = 'default' WHERE ns = ''
    AND EXISTS (SELECT 1 FROM merchants WHERE id = 'default' AND account_id IS NULL);
UPDATE sync_cursors SET merchant = (SELECT m.id FROM merchants m WHERE m.account_id = sync_cursors.merchant)
    WHERE merchant IN (SELECT account_id FROM merchants WHERE account_id IS NOT NULL);
UPDATE sync_cursors SET merchant = 'default' WHERE merchant = ''
    AND EXISTS (SELECT 1 FROM merchants WHERE id = 'default' AND account_id IS NULL);
