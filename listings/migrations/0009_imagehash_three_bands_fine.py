"""Three bands of 21, 21 and 22 bits instead of four of 16, recomputed here from
each row's stored hash, and the 256-bit confirmation hash, which needs the
pictures: `manage.py backfill_photo_signals` computes it for the images stored
before (it treats an image with a hash row lacking it as not done)."""

from django.db import migrations, models

THREE_BANDS = (
    "UPDATE listings_imagehash SET band0 = (phash >> 43) & 2097151, "
    "band1 = (phash >> 22) & 2097151, band2 = phash & 4194303"
)
FOUR_BANDS = (
    "UPDATE listings_imagehash SET band0 = (phash >> 48) & 65535, "
    "band1 = (phash >> 32) & 65535, band2 = (phash >> 16) & 65535, "
    "band3 = phash & 65535"
)


class Migration(migrations.Migration):
    dependencies = [("listings", "0008_image_photo_signals")]

    operations = [
        migrations.RemoveIndex(model_name="imagehash", name="imagehash_band3"),
        migrations.AlterField(
            model_name="imagehash", name="band3", field=models.IntegerField(null=True)
        ),
        # Going back, the four bands are recomputed once band3 exists again.
        migrations.RunSQL(migrations.RunSQL.noop, reverse_sql=FOUR_BANDS),
        migrations.RemoveField(model_name="imagehash", name="band3"),
        migrations.AddField(
            model_name="imagehash",
            name="fine",
            field=models.BinaryField(editable=False, null=True),
        ),
        migrations.RunSQL(THREE_BANDS, reverse_sql=migrations.RunSQL.noop),
    ]
