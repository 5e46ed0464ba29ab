-- DropIndex
DROP INDEX "clients_owner_id_idx";

-- CreateIndex
CREATE UNIQUE INDEX "clients_owner_id_name_key" ON "clients"("owner_id", "name");

