"""Which stored rows still need a media file, and pictures past their keeping time."""

from __future__ import annotations

from server.engine.catalog.store.base import StoreBase, now_iso


class FileRows(StoreBase):
    """The rows behind the media files."""

    def path_in_use(self, path: str, but: int) -> bool:
        """Whether a row other than ``but`` that still needs it points at ``path``: an
        active reference, a crop (a review item's picture, or an auto-label's kept to be
        promoted), or an image with a review item."""
        row = self.db.execute(
            "select 1 from images i where i.path = ? and i.id != ? and "
            "((i.kind = 'reference' and i.status = 'active') or i.kind = 'crop' or "
            "exists (select 1 from review r where r.image_id = i.id)) "
            "union all select 1 from review where region_path = ? and image_id != ? "
            "limit 1",
            [path, but, path, but],
        ).fetchone()
        return row is not None

    def expired_pictures(self, cutoff: str) -> list[tuple[int, list[str]]]:
        """(image id, paths: its picture and region, when kept) of the items decided or
        skipped before ``cutoff`` (ISO time) whose files are still kept, and of the
        auto-labels (kept to be promoted) recorded before it."""
        return [
            (int(i), [p for p in (path, region) if p])
            for i, path, region in self.db.execute(
                "select i.id, i.path, r.region_path from review r join images i "
                "on i.id = r.image_id where r.status != 'pending' and r.resolved_at < ? "
                "and (i.path != '' or r.region_path is not null) "
                "union all select i.id, i.path, null from images i where i.kind = 'crop' "
                "and i.path != '' and i.created_at < ? and not exists "
                "(select 1 from review r where r.image_id = i.id)",
                [cutoff, cutoff],
            )
        ]

    def forget_picture(self, image_id: int) -> None:
        """Record that an image's files are no longer kept (its rows stay)."""
        with self.transaction():
            self.db.conn.execute(
                "update images set path = '', updated_at = ? where id = ?", [now_iso(), image_id]
            )
            self.db.conn.execute(
                "update review set region_path = null where image_id = ?", [image_id]
            )

    def media_paths(self) -> set[str]:
        """Paths some row still needs: active references, crops (review items' and
        auto-labels' pictures), and review items' pictures and regions."""
        paths = {
            str(p)
            for (p,) in self.db.execute(
                "select path from images where path != '' and "
                "((kind = 'reference' and status = 'active') or kind = 'crop' or "
                "id in (select image_id from review))"
            )
        }
        return paths | {
            str(p)
            for (p,) in self.db.execute(
                "select region_path from review where region_path is not null"
            )
        }
