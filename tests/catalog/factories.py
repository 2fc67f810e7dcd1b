import factory

from apps.catalog.models import Price, Product


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    description = factory.Faker("sentence")
    active = True


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    product = factory.SubFactory(ProductFactory)
    unit_amount = 1999
    currency = "usd"
    recurring_interval = None
    active = True
